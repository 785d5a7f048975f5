"""The reference igv.js draws a dataset on: contig names and lengths (a chrom.sizes file).

The store keeps no contig lengths, so the primary assembly's lengths are used for the
contigs of GRCh38 and GRCh37 (GRC assembly reports, assembled-molecule sequence lengths)
and, for any other contig, the extent of its variants rounded up to a megabase (the
extent itself would tell where the last variant is).
"""

from __future__ import annotations

from node.beacon.refseq import canonical_assembly
from node.domain import normalize_contig
from node.web.portal.access import Summary

__all__ = ["chrom_sizes"]

_NAMES = (*(str(i) for i in range(1, 23)), "X", "Y", "MT")
_LENGTHS = {
    "GRCh38": (248956422, 242193529, 198295559, 190214555, 181538259, 170805979, 159345973,
               145138636, 138394717, 133797422, 135086622, 133275309, 114364328, 107043718,
               101991189, 90338345, 83257441, 80373285, 58617616, 64444167, 46709983,
               50818468, 156040895, 57227415, 16569),
    "GRCh37": (249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663,
               146364022, 141213431, 135534747, 135006516, 133851895, 115169878, 107349540,
               102531392, 90354753, 81195210, 78077248, 59128983, 63025520, 48129895,
               51304566, 155270560, 59373566, 16569),
}
_MB = 1_000_000


def chrom_sizes(summary: Summary) -> str:
    known = dict(zip(_NAMES, _LENGTHS.get(canonical_assembly(summary.assembly), ()),
                     strict=False))
    lines = []
    for name, extent in summary.extents.items():
        length = known.get(normalize_contig(name))
        if length is None or length < extent:
            length = -(-extent // _MB) * _MB
        lines.append(f"{name}\t{length}\n")
    return "".join(lines)
