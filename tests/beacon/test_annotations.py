"""geneId and aminoacidChange queries over VEP CSQ annotations, against bcftools
+split-vep on the synthetic (EGA) VCF; annotation parsing units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.beacon.annotations import GeneIndex, short_aa_change
from node.config import DatasetSettings
from node.names import Granularity, SecurityLevel
from node.store.base import VariantStore
from tests.beacon.conftest import make_app
from tests.beacon.schemas import validate
from tests.beacon.truth import _pipeline, indexed_copy

OPEN38 = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                         max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, synth_store: VariantStore) -> Any:
    return await aiohttp_client(make_app(tmp_path, {"synth": synth_store}, {"synth": OPEN38}))


def _vep_allele(ref: str, alt: str) -> str:
    return (alt[1:] or "-") if ref[:1] == alt[:1] and len(ref) != len(alt) else alt


def split_vep(vcf: Path) -> list[tuple[str, str, str, str, str]]:
    """(POS, REF, ALT, SYMBOL, HGVSp) per CSQ entry of a carried allele (AC recomputed by
    +fill-tags > 0, as the store lists only carried alleles), each entry given the ALT its
    Allele field names (the file's INFO breaks `bcftools norm -m-`)."""
    text = _pipeline(
        ["bcftools", "+fill-tags", "-Ou", str(vcf), "--", "-t", "AC"],
        ["bcftools", "+split-vep", "-d", "-f",
         "%POS\t%REF\t%ALT\t%SYMBOL\t%HGVSp\t%Allele\t%AC\n", "-"],
    )
    rows = []
    for line in text.splitlines():
        pos, ref, alts, symbol, hgvsp, allele, counts = line.split("\t")
        alt_list = alts.split(",")
        for alt, ac in zip(alt_list, counts.split(","), strict=True):
            # With one ALT every entry is that ALT's; otherwise VEP names it by Allele.
            mine = len(alt_list) == 1 or allele in (alt, _vep_allele(ref, alt))
            if mine and int(ac) > 0:
                rows.append((pos, ref, alt, symbol, hgvsp))
    return rows


@pytest.mark.parametrize("gene", ["BRCA1", "BRCA2", "F5", "APOE", "DLGAP2", "FBXO25", "DMD"])
async def test_gene_counts_match_split_vep(client: Any, synth_vcf: Path, gene: str) -> None:
    truth = {(p, r, a) for p, r, a, s, _ in split_vep(synth_vcf) if s == gene}
    resp = await client.get("/api/g_variants", params={"geneId": gene,
                                                      "requestedGranularity": "record",
                                                      "limit": "100"})
    doc = await resp.json()
    validate(doc, "framework/json/responses/beaconResultsetsResponse.json")
    assert doc["responseSummary"]["numTotalResults"] == len(truth) > 0
    for record in doc["response"]["resultSets"][0]["results"]:
        assert gene in record["molecularAttributes"]["geneIds"]
    lower = await (await client.get("/api/g_variants", params={
        "geneid": gene.lower(), "requestedGranularity": "count"})).json()
    assert lower["responseSummary"]["numTotalResults"] == len(truth)


async def test_aminoacid_change_matches_split_vep(client: Any, synth_vcf: Path) -> None:
    rows = [r for r in split_vep(synth_vcf) if r[4] not in (".", "")]
    gene, hgvsp = rows[0][3], rows[0][4]
    change = short_aa_change(hgvsp)
    truth = {(p, r, a) for p, r, a, s, h in rows if s == gene and short_aa_change(h) == change}
    for spelled in (change, "p." + hgvsp.rsplit("p.", 1)[1]):
        doc = await (await client.get("/api/g_variants", params={
            "geneId": gene, "aminoacidChange": spelled,
            "requestedGranularity": "count"})).json()
        assert doc["responseSummary"]["numTotalResults"] == len(truth) > 0


def test_short_aa_change_forms() -> None:
    assert short_aa_change("ENSP1.3:p.Arg534Gln") == "R534Q"
    assert short_aa_change("p.(Val600Glu)") == "V600E"
    assert short_aa_change("p.Trp24Ter") == "W24*"


def test_gene_bed_index(tmp_path: Path) -> None:
    bed = tmp_path / "genes.bed"
    bed.write_text("chr17\t43044294\t43125483\tBRCA1\n13\t32315507\t32400268\tBRCA2\n")
    genes = GeneIndex.load(bed)
    (region,) = genes.regions("brca1")
    assert (region.contig, region.start, region.end) == ("17", 43044294, 43125483)
    assert genes.regions("TP53") == ()
    bad = tmp_path / "bad.bed"
    bad.write_text("chr1\tx\t5\tG\n")
    with pytest.raises(Exception, match="BED"):
        GeneIndex.load(bad)


async def test_gene_bed_coordinates_answer_gene_queries(
    aiohttp_client: Any, tmp_path: Path, synth_store: VariantStore, synth_vcf: Path
) -> None:
    """A gene known only from the configured BED (no CSQ names it) is found by region."""
    bed = tmp_path / "genes.bed"
    bed.write_text("chr17\t43044294\t43125483\tMY_BRCA1_LOCUS\n")
    indexed = indexed_copy(synth_vcf, tmp_path / "synth.vcf.gz")
    text = _pipeline(
        ["bcftools", "+fill-tags", "-Ou", str(indexed), "--", "-t", "AC"],
        ["bcftools", "view", "-Ou", "-"],
        ["bcftools", "query", "-f", "%CHROM\t%POS\t%END\t%AC\n"],
    )
    expected = 0
    for line in text.splitlines():
        chrom, pos, end, counts = line.split("\t")
        # BED [43044294, 43125483) against the record's 1-based [POS, END] span.
        if chrom == "17" and int(pos) <= 43125483 and int(end) > 43044294:
            expected += sum(1 for ac in counts.split(",") if int(ac) > 0)
    app = make_app(tmp_path, {"synth": synth_store}, {"synth": OPEN38},
                   gene_beds={"hg38": str(bed)})
    client = await aiohttp_client(app)
    doc = await (await client.get("/api/g_variants", params={
        "geneId": "my_brca1_locus", "requestedGranularity": "count"})).json()
    assert doc["responseSummary"]["numTotalResults"] == expected > 0
