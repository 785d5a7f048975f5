from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CountPrecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUNT_PRECISION_UNSPECIFIED: _ClassVar[CountPrecision]
    COUNT_PRECISION_EXACT: _ClassVar[CountPrecision]
    COUNT_PRECISION_ROUNDED: _ClassVar[CountPrecision]
    COUNT_PRECISION_IMPRECISE: _ClassVar[CountPrecision]

class Granularity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANULARITY_UNSPECIFIED: _ClassVar[Granularity]
    GRANULARITY_BOOLEAN: _ClassVar[Granularity]
    GRANULARITY_COUNT: _ClassVar[Granularity]
    GRANULARITY_RECORD: _ClassVar[Granularity]
COUNT_PRECISION_UNSPECIFIED: CountPrecision
COUNT_PRECISION_EXACT: CountPrecision
COUNT_PRECISION_ROUNDED: CountPrecision
COUNT_PRECISION_IMPRECISE: CountPrecision
GRANULARITY_UNSPECIFIED: Granularity
GRANULARITY_BOOLEAN: Granularity
GRANULARITY_COUNT: Granularity
GRANULARITY_RECORD: Granularity

class Count(_message.Message):
    __slots__ = ("value", "precision", "lower", "upper", "unbounded", "unknown")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    UNBOUNDED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    value: int
    precision: CountPrecision
    lower: int
    upper: int
    unbounded: bool
    unknown: bool
    def __init__(self, value: _Optional[int] = ..., precision: _Optional[_Union[CountPrecision, str]] = ..., lower: _Optional[int] = ..., upper: _Optional[int] = ..., unbounded: _Optional[bool] = ..., unknown: _Optional[bool] = ...) -> None: ...

class Allele(_message.Message):
    __slots__ = ("contig", "start", "ref", "alt")
    CONTIG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    ALT_FIELD_NUMBER: _ClassVar[int]
    contig: str
    start: int
    ref: str
    alt: str
    def __init__(self, contig: _Optional[str] = ..., start: _Optional[int] = ..., ref: _Optional[str] = ..., alt: _Optional[str] = ...) -> None: ...

class GetNodeInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DatasetInfo(_message.Message):
    __slots__ = ("id", "name", "assembly", "security_level", "granularity")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ASSEMBLY_FIELD_NUMBER: _ClassVar[int]
    SECURITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    assembly: str
    security_level: str
    granularity: Granularity
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., assembly: _Optional[str] = ..., security_level: _Optional[str] = ..., granularity: _Optional[_Union[Granularity, str]] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("id", "name", "organization", "software_version", "api_version", "datasets", "assemblies", "capabilities", "max_batch_alleles", "max_message_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    ASSEMBLIES_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ALLELES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    organization: str
    software_version: str
    api_version: str
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetInfo]
    assemblies: _containers.RepeatedScalarFieldContainer[str]
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    max_batch_alleles: int
    max_message_bytes: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., organization: _Optional[str] = ..., software_version: _Optional[str] = ..., api_version: _Optional[str] = ..., datasets: _Optional[_Iterable[_Union[DatasetInfo, _Mapping]]] = ..., assemblies: _Optional[_Iterable[str]] = ..., capabilities: _Optional[_Iterable[str]] = ..., max_batch_alleles: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class BatchAlleleStatsRequest(_message.Message):
    __slots__ = ("alleles", "dataset_ids", "allele_columns")
    ALLELES_FIELD_NUMBER: _ClassVar[int]
    DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    ALLELE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    alleles: _containers.RepeatedCompositeFieldContainer[Allele]
    dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    allele_columns: AlleleColumns
    def __init__(self, alleles: _Optional[_Iterable[_Union[Allele, _Mapping]]] = ..., dataset_ids: _Optional[_Iterable[str]] = ..., allele_columns: _Optional[_Union[AlleleColumns, _Mapping]] = ...) -> None: ...

class AlleleColumns(_message.Message):
    __slots__ = ("contigs", "starts", "refs", "alts")
    CONTIGS_FIELD_NUMBER: _ClassVar[int]
    STARTS_FIELD_NUMBER: _ClassVar[int]
    REFS_FIELD_NUMBER: _ClassVar[int]
    ALTS_FIELD_NUMBER: _ClassVar[int]
    contigs: _containers.RepeatedScalarFieldContainer[str]
    starts: _containers.RepeatedScalarFieldContainer[int]
    refs: _containers.RepeatedScalarFieldContainer[str]
    alts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, contigs: _Optional[_Iterable[str]] = ..., starts: _Optional[_Iterable[int]] = ..., refs: _Optional[_Iterable[str]] = ..., alts: _Optional[_Iterable[str]] = ...) -> None: ...

class CountColumns(_message.Message):
    __slots__ = ("values", "precisions", "lowers", "uppers", "unbounded", "unknown")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    PRECISIONS_FIELD_NUMBER: _ClassVar[int]
    LOWERS_FIELD_NUMBER: _ClassVar[int]
    UPPERS_FIELD_NUMBER: _ClassVar[int]
    UNBOUNDED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    precisions: _containers.RepeatedScalarFieldContainer[CountPrecision]
    lowers: _containers.RepeatedScalarFieldContainer[int]
    uppers: _containers.RepeatedScalarFieldContainer[int]
    unbounded: _containers.RepeatedScalarFieldContainer[bool]
    unknown: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, values: _Optional[_Iterable[int]] = ..., precisions: _Optional[_Iterable[_Union[CountPrecision, str]]] = ..., lowers: _Optional[_Iterable[int]] = ..., uppers: _Optional[_Iterable[int]] = ..., unbounded: _Optional[_Iterable[bool]] = ..., unknown: _Optional[_Iterable[bool]] = ...) -> None: ...

class DatasetStatsColumns(_message.Message):
    __slots__ = ("dataset_id", "granularity", "exists", "allele_count", "allele_number", "carriers", "homozygotes", "frequency", "frequency_precision")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    ALLELE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALLELE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CARRIERS_FIELD_NUMBER: _ClassVar[int]
    HOMOZYGOTES_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_PRECISION_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    granularity: Granularity
    exists: _containers.RepeatedScalarFieldContainer[bool]
    allele_count: CountColumns
    allele_number: CountColumns
    carriers: CountColumns
    homozygotes: CountColumns
    frequency: _containers.RepeatedScalarFieldContainer[float]
    frequency_precision: _containers.RepeatedScalarFieldContainer[CountPrecision]
    def __init__(self, dataset_id: _Optional[str] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., exists: _Optional[_Iterable[bool]] = ..., allele_count: _Optional[_Union[CountColumns, _Mapping]] = ..., allele_number: _Optional[_Union[CountColumns, _Mapping]] = ..., carriers: _Optional[_Union[CountColumns, _Mapping]] = ..., homozygotes: _Optional[_Union[CountColumns, _Mapping]] = ..., frequency: _Optional[_Iterable[float]] = ..., frequency_precision: _Optional[_Iterable[_Union[CountPrecision, str]]] = ...) -> None: ...

class DatasetAlleleStats(_message.Message):
    __slots__ = ("dataset_id", "granularity", "exists", "allele_count", "allele_number", "frequency", "frequency_precision", "carriers", "homozygotes")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    ALLELE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALLELE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_PRECISION_FIELD_NUMBER: _ClassVar[int]
    CARRIERS_FIELD_NUMBER: _ClassVar[int]
    HOMOZYGOTES_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    granularity: Granularity
    exists: bool
    allele_count: Count
    allele_number: Count
    frequency: float
    frequency_precision: CountPrecision
    carriers: Count
    homozygotes: Count
    def __init__(self, dataset_id: _Optional[str] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., exists: _Optional[bool] = ..., allele_count: _Optional[_Union[Count, _Mapping]] = ..., allele_number: _Optional[_Union[Count, _Mapping]] = ..., frequency: _Optional[float] = ..., frequency_precision: _Optional[_Union[CountPrecision, str]] = ..., carriers: _Optional[_Union[Count, _Mapping]] = ..., homozygotes: _Optional[_Union[Count, _Mapping]] = ...) -> None: ...

class AlleleResult(_message.Message):
    __slots__ = ("allele", "datasets")
    ALLELE_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    allele: Allele
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetAlleleStats]
    def __init__(self, allele: _Optional[_Union[Allele, _Mapping]] = ..., datasets: _Optional[_Iterable[_Union[DatasetAlleleStats, _Mapping]]] = ...) -> None: ...

class BatchAlleleStatsResponse(_message.Message):
    __slots__ = ("results", "columns")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AlleleResult]
    columns: _containers.RepeatedCompositeFieldContainer[DatasetStatsColumns]
    def __init__(self, results: _Optional[_Iterable[_Union[AlleleResult, _Mapping]]] = ..., columns: _Optional[_Iterable[_Union[DatasetStatsColumns, _Mapping]]] = ...) -> None: ...

class RegionStatsRequest(_message.Message):
    __slots__ = ("contig", "start", "end", "variant_types", "min_frequency", "max_frequency", "dataset_ids")
    CONTIG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    VARIANT_TYPES_FIELD_NUMBER: _ClassVar[int]
    MIN_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_FREQUENCY_FIELD_NUMBER: _ClassVar[int]
    DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    contig: str
    start: int
    end: int
    variant_types: _containers.RepeatedScalarFieldContainer[str]
    min_frequency: float
    max_frequency: float
    dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, contig: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., variant_types: _Optional[_Iterable[str]] = ..., min_frequency: _Optional[float] = ..., max_frequency: _Optional[float] = ..., dataset_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RegionVariantStats(_message.Message):
    __slots__ = ("allele", "variant_type", "stats", "end")
    ALLELE_FIELD_NUMBER: _ClassVar[int]
    VARIANT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    allele: Allele
    variant_type: str
    stats: DatasetAlleleStats
    end: int
    def __init__(self, allele: _Optional[_Union[Allele, _Mapping]] = ..., variant_type: _Optional[str] = ..., stats: _Optional[_Union[DatasetAlleleStats, _Mapping]] = ..., end: _Optional[int] = ...) -> None: ...

class RegionStatsChunk(_message.Message):
    __slots__ = ("variants",)
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    variants: _containers.RepeatedCompositeFieldContainer[RegionVariantStats]
    def __init__(self, variants: _Optional[_Iterable[_Union[RegionVariantStats, _Mapping]]] = ...) -> None: ...

class CountIndividualsRequest(_message.Message):
    __slots__ = ("alleles", "dataset_ids")
    ALLELES_FIELD_NUMBER: _ClassVar[int]
    DATASET_IDS_FIELD_NUMBER: _ClassVar[int]
    alleles: _containers.RepeatedCompositeFieldContainer[Allele]
    dataset_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, alleles: _Optional[_Iterable[_Union[Allele, _Mapping]]] = ..., dataset_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DatasetIndividualCount(_message.Message):
    __slots__ = ("dataset_id", "granularity", "exists", "individuals")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    INDIVIDUALS_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    granularity: Granularity
    exists: bool
    individuals: Count
    def __init__(self, dataset_id: _Optional[str] = ..., granularity: _Optional[_Union[Granularity, str]] = ..., exists: _Optional[bool] = ..., individuals: _Optional[_Union[Count, _Mapping]] = ...) -> None: ...

class CountIndividualsResponse(_message.Message):
    __slots__ = ("datasets",)
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetIndividualCount]
    def __init__(self, datasets: _Optional[_Iterable[_Union[DatasetIndividualCount, _Mapping]]] = ...) -> None: ...

class GetAuditCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuditCheckpoint(_message.Message):
    __slots__ = ("token", "public_key_pem")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    token: str
    public_key_pem: str
    def __init__(self, token: _Optional[str] = ..., public_key_pem: _Optional[str] = ...) -> None: ...
