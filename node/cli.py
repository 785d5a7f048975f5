"""The `fednode` command.

Every subcommand is one small function; errors of the node (`NodeError`) end the command
with their message and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from node import __version__
from node.config import CONFIG_FILE, config_schema, dump_settings, load_settings
from node.errors import InvalidInput, NodeError

if TYPE_CHECKING:
    from node.store.ingest.ingest_parallel import TaskRunner

__all__ = ["main"]

Command = Callable[[argparse.Namespace], int]

CONFIG_TEMPLATE = """\
# fednode node configuration. Layers: defaults -> this file -> FEDNODE_* environment
# variables (nested with "__", e.g. FEDNODE_SERVER__PORT=9000). Print the effective
# configuration with `fednode config print DIR`, its JSON schema with `--schema`.

# Where the TileDB-VCF datasets live: a folder relative to this file, or any URI
# TileDB's VFS accepts (s3://bucket/prefix). Dataset <id> is <store_uri>/<id>.
store_uri = "datasets"

[node]
id = "org.example.fednode"
name = "fednode"
organization = "Example Organization"

[server]
host = "127.0.0.1"
port = 8080

# One table per dataset id; a dataset without a table gets the defaults
# (CONTROLLED, boolean answers for anonymous requesters).
# [datasets.my-cohort]
# name = "My cohort"
# assembly = "GRCh38"
# security_level = "PUBLIC"
# max_granularity = { PUBLIC = "count", REGISTERED = "count", CONTROLLED = "record" }
"""


def cmd_init(args: argparse.Namespace) -> int:
    home: Path = args.dir
    home.mkdir(parents=True, exist_ok=True)
    config = home / CONFIG_FILE
    if config.exists() and not args.force:
        raise NodeError(f"{config} exists; use --force to overwrite it")
    config.write_text(CONFIG_TEMPLATE)
    (home / "datasets").mkdir(exist_ok=True)
    print(f"initialised node home {home} ({config})")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from node.store.dataset.writer_lock import LockOptions
    from node.store.tiledbvcf import TileDBVCFStore

    settings = load_settings(args.dir)
    _require_home(args.dir)
    paths = _input_paths(args.files, args.files_from)  # before a dataset is created
    uri = settings.dataset_uri(args.dataset)
    config = settings.tiledb_config
    runner = _runner(args)
    mb = args.memory_budget_mb
    budget_mb = _memory_budget(settings.ingest.memory_budget_mb if mb is None else mb, runner)
    lock = LockOptions(
        wait_s=args.wait,
        label=args.dataset,
        lock_dir=settings.home / "locks",
        on_wait=lambda holder: print(
            f"fednode: dataset {args.dataset} is being written ({holder}); waiting up to "
            f"{args.wait:g} s", file=sys.stderr, flush=True,
        ),
    )
    with lock.hold(uri):  # two first ingests must not both create the dataset
        if TileDBVCFStore.exists(uri, tiledb_config=config):
            store = TileDBVCFStore.open(uri, tiledb_config=config)
        else:
            store = TileDBVCFStore.create(
                uri, assembly=args.assembly or settings.dataset(args.dataset).assembly,
                tiledb_config=config,
                variant_stats_version=settings.dataset(args.dataset).variant_stats_version,
            )
    try:
        summary = store.ingest(
            paths,
            assembly=args.assembly,
            replace=args.replace,
            threads=args.threads,
            progress=sys.stderr.isatty(),
            lock=lock,
            runner=runner,
            memory_budget_mb=budget_mb,
            block_reader=settings.ingest.block_reader,
        )
    finally:
        store.close()
    print(
        f"dataset {args.dataset}: ingested {summary.records} records from {summary.files} "
        f"file(s); samples added {len(summary.samples_added)}, replaced "
        f"{len(summary.samples_replaced)}; assembly {summary.assembly}"
    )
    return 0


def _input_paths(files: list[str], listing: Path | None) -> list[Path]:
    """The ingest's inputs: the arguments, then LIST's lines (blank lines and lines
    starting with `#` skipped), in that order."""
    paths = [Path(p) for p in files]
    if listing is not None:
        try:
            text = sys.stdin.read() if str(listing) == "-" else listing.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{listing}: cannot read the file list: {exc}") from exc
        paths += [Path(s) for line in text.splitlines() if (s := line.strip()) and s[0] != "#"]
    if not paths:
        raise InvalidInput("no input files: give paths or --files-from LIST")
    return paths


def _runner(args: argparse.Namespace) -> TaskRunner | None:
    """Where a partitioned ingest runs: None (this process), worker processes, Dask."""
    from node.store.ingest.ingest_parallel import DaskRunner, ProcessRunner

    if args.workers is not None and args.workers < 1:
        raise NodeError("--workers must be at least 1")
    if args.dask:
        return DaskRunner(args.dask, workers=args.workers or 2)
    if args.workers and args.workers > 1:
        return ProcessRunner(args.workers)
    return None


def _memory_budget(mb: int, runner: TaskRunner | None) -> int:
    """`mb`, checked before anything is written: an ingest's processes can keep to it."""
    from node.store.ingest.memory_budget import MemoryBudget

    local = runner is not None and runner.shares_machine
    return MemoryBudget.of(mb, workers=runner.workers if runner is not None and local else 1).mb


def cmd_index(args: argparse.Namespace) -> int:
    from node.store.dataset.writer_lock import LockOptions
    from node.store.ingest.aggregate_build import aggregate_status, build_aggregate

    settings = load_settings(args.dir)
    _require_home(args.dir)
    uri = settings.dataset_uri(args.dataset)
    config = settings.tiledb_config
    status = aggregate_status(uri, tiledb_config=config)
    lock = LockOptions(wait_s=args.wait, label=args.dataset, lock_dir=settings.home / "locks")
    summary = build_aggregate(
        uri, tiledb_config=config, lock=lock, memory_budget_mb=settings.ingest.memory_budget_mb
    )
    if not summary.samples:
        print(f"dataset {args.dataset}: fednode aggregate is up to date ({status})")
        return 0
    reads = "fednode_genotypes" if summary.genotypes else "data (samples share too few records)"
    print(
        f"dataset {args.dataset}: fednode aggregate built for {len(summary.samples)} "
        f"sample(s) from {summary.cells} cells in {summary.seconds:.1f} s; region reads "
        f"use {reads}"
    )
    return 0


def cmd_store_consolidate(args: argparse.Namespace) -> int:
    from node.store.dataset.consolidation import consolidate
    from node.store.dataset.dataset_state import exists
    from node.store.dataset.writer_lock import LockOptions

    settings = load_settings(args.dir)
    _require_home(args.dir)
    uri = settings.dataset_uri(args.dataset)
    config = settings.tiledb_config
    if not exists(uri, tiledb_config=config):
        raise NodeError(f"no dataset {args.dataset!r} in {args.dir}")
    if args.vacuum_after < 0:
        raise NodeError("--vacuum-after must be at least 0")
    lock = LockOptions(wait_s=args.wait, label=args.dataset, lock_dir=settings.home / "locks")
    summary = consolidate(uri, tiledb_config=config, lock=lock, vacuum_after_s=args.vacuum_after)
    before, after = sum(summary.before.values()), sum(summary.after.values())
    vacuum = (
        f"merged fragments wait {args.vacuum_after:g} s for the next run's vacuum"
        if summary.vacuum_pending
        else "vacuumed"
    )
    earlier = "; the previous run's vacuumed" if summary.vacuumed else ""
    print(
        f"dataset {args.dataset}: {before} fragments consolidated into {after} in "
        f"{summary.seconds:.1f} s; {vacuum}{earlier}"
    )
    return 0


def cmd_reads_add(args: argparse.Namespace) -> int:
    from node.reads.catalog import ReadsCatalog
    from node.reads.storage import Storage

    _require_home(args.dir)
    storage = Storage(load_settings(args.dir).tiledb_config)  # s3:// as the store reaches it
    catalog = ReadsCatalog(args.dir / "reads", storage=storage)
    entry = catalog.add(dataset=args.dataset, entry_id=args.id, path=args.file,
                        index=args.index, replace=args.replace)
    endpoint = "reads" if entry.kind == "reads" else "variants"
    print(f"registered {entry.format} {entry.path} as /htsget/{endpoint}/{entry.id} "
          f"(dataset {entry.dataset}, index {entry.index})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from node.web.serve import serve

    _require_home(args.dir)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings(args.dir)
    peer = {"port": args.grpc_port} if args.grpc_port is not None else {}
    settings = settings.model_copy(
        update={
            "server": settings.server.model_copy(update=overrides),
            "peer": settings.peer.model_copy(update=peer),
        }
    )
    if args.aggregator is not None:
        from node.peer.peers import load_peers
        from node.web.aggregator import serve_aggregator

        if args.workers is not None:
            raise NodeError("--workers is not available with --aggregator")
        serve_aggregator(settings, load_peers(args.aggregator))
        return 0
    if args.workers is not None:
        from node.web.workers import serve_workers

        return serve_workers(settings, args.workers)
    serve(settings)
    return 0


def cmd_federate_count(args: argparse.Namespace) -> int:
    import asyncio

    from node.peer import report
    from node.peer.peers import load_peers

    peers = load_peers(args.peers)
    variants = [report.parse_variant(v) for v in args.variants]
    if args.file is not None:
        variants += report.read_variants(args.file)
    region = report.parse_region(args.region) if args.region else None
    if (region is None) == (not variants):
        raise NodeError("give VARIANT(s) and/or --file, or --region (not both)")
    if args.individuals:
        if region is not None or not 0 < len(variants) <= 100:
            raise NodeError("--individuals counts carriers of 1 to 100 VARIANTs (no --region)")
        found = asyncio.run(report.run_individuals(peers, variants, deadline_s=args.deadline))
        print(report.render_individuals(found, as_json=args.json))
        return 0 if found.complete else 1
    result = asyncio.run(
        report.run(peers, variants=variants, region=region, deadline_s=args.deadline)
    )
    print(report.render_json(result) if args.json else report.render_table(result))
    return 0 if result.complete else 1


def cmd_federate_checkpoints(args: argparse.Namespace) -> int:
    import asyncio

    from node.peer.checkpoints import collect
    from node.peer.peers import load_peers

    found = asyncio.run(collect(load_peers(args.peers), args.dir, deadline_s=args.deadline))
    for c in found:
        print(f"{c.peer_id}: {'kept' if c.ok else 'FAILED'}: {c.message}")
    return 0 if all(c.ok for c in found) else 1


def cmd_metadata_load(args: argparse.Namespace) -> int:
    from node.catalog import Catalog

    _require_home(args.dir)
    summary = Catalog.open(args.dir).load(
        args.dataset, [Path(p) for p in args.files], ontology=args.ontology
    )
    counts = ", ".join(f"{n} {t}" for t, n in summary.counts.items())
    print(
        f"dataset {summary.dataset_id}: loaded {counts}; {summary.vcf_samples} VCF sample(s), "
        f"{len(summary.unlinked_samples)} unlinked; {summary.ontology_terms} ontology term(s) added"
    )
    for skipped in summary.skipped_files:
        print(f"skipped {skipped} (variants come from `fednode ingest`)", file=sys.stderr)
    return 0


def cmd_config_print(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(config_schema(), indent=2, sort_keys=True))
    else:
        print(dump_settings(load_settings(args.dir)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from node.demo import build_demo

    settings = build_demo(args.dir, rebuild=args.rebuild)
    if args.no_serve:
        return 0
    from node.web.serve import serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    serve(settings.model_copy(update={"server": settings.server.model_copy(update=overrides)}))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from node.privacy.audit import load_public_key, verify

    _require_home(args.dir)
    settings = load_settings(args.dir)
    path = settings.home / settings.audit.path
    if args.checkpoints and not args.key:
        raise NodeError("--checkpoints needs --key (the node's audit public key)")
    report = verify(path, public_key=load_public_key(args.key) if args.key else None,
                    outside=args.checkpoints)
    for problem in report.problems:
        print(f"{problem.file or path}:{problem.line}: {problem.kind}: {problem.detail}")
    for notice in report.notices:
        print(f"{notice.file or path}:{notice.line}: note: {notice.kind}: {notice.detail}")
    verdict = "intact" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{path}: {report.entries} entries, {verdict}")
    return 0 if report.ok else 1


def cmd_audit_key(args: argparse.Namespace) -> int:
    from node.privacy.audit import public_key_pem

    _require_home(args.dir)
    settings = load_settings(args.dir)
    sys.stdout.write(public_key_pem(settings.home / settings.audit.checkpoint_key).decode())
    return 0


def _require_home(home: Path) -> None:
    if not (home / CONFIG_FILE).is_file():
        raise NodeError(f"{home} is not a node home (no {CONFIG_FILE}); run `fednode init {home}`")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fednode", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fednode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a node home (config file and dataset folder)")
    p.add_argument("dir", type=Path)
    p.add_argument("--force", action="store_true", help="overwrite an existing config file")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("ingest", help="ingest VCF/BCF files into a dataset (atomic)")
    p.add_argument("dir", type=Path)
    p.add_argument("--dataset", required=True, help="dataset id (created if absent)")
    p.add_argument("--assembly", help="assembly when the VCF header does not say (GRCh38)")
    p.add_argument("--replace", action="store_true", help="replace samples already present")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--workers",
        type=int,
        help="ingest in N worker processes (by file and contig region, one commit at the "
        "end); with --dask local: the LocalCluster's processes (default 2)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the partitioned ingest on a Dask cluster: a scheduler address "
        "(tcp://HOST:8786) or 'local'; workers need the input files at the same paths",
    )
    p.add_argument(
        "--memory-budget-mb",
        type=int,
        metavar="MB",
        help="peak memory (RSS, MiB) of the ingest, its --workers processes included "
        "(default: [ingest] memory_budget_mb, 500); at least 200 per process",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for another ingest of the dataset to finish (default 30)",
    )
    p.add_argument(
        "--files-from",
        type=Path,
        metavar="LIST",
        help="read input paths from LIST, one per line ('-': standard input), besides "
        "any given as arguments (thousands of per-sample files exceed the command line)",
    )
    p.add_argument("files", nargs="*")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "index",
        help="build fednode's aggregate of a dataset TileDB-VCF wrote, or add the samples "
        "TileDB-VCF stored since (atomic; TileDB-VCF's arrays are not touched)",
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--dataset", required=True, help="dataset id")
    p.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for an ingest of the dataset to finish (default 30)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("store", help="maintain the datasets' storage")
    store_sub = p.add_subparsers(dest="store_command", required=True)
    q = store_sub.add_parser(
        "consolidate",
        help="merge a dataset's fragments, commits and metadata (safe while serving); "
        "vacuum what an earlier run merged once --vacuum-after seconds have passed",
    )
    q.add_argument("dir", type=Path)
    q.add_argument("--dataset", required=True, help="dataset id")
    q.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for an ingest of the dataset to finish (default 30)")
    q.add_argument(
        "--vacuum-after", type=float, default=600.0, metavar="SECONDS",
        help="grace before merged fragments are deleted, longer than the servers' "
        "housekeeping period plus their longest query (default 600; 0: now, when no "
        "server reads the dataset)",
    )
    q.set_defaults(func=cmd_store_consolidate)

    p = sub.add_parser("reads", help="register BAM/CRAM/VCF/BCF files for htsget")
    reads_sub = p.add_subparsers(dest="reads_command", required=True)
    q = reads_sub.add_parser(
        "add", help="register one file, a path, s3:// or https:// URI (it stays where it is)"
    )
    q.add_argument("dir", type=Path)
    q.add_argument("--dataset", required=True, help="dataset whose access rules apply")
    q.add_argument("--id", required=True, help="htsget id (one id may have several formats)")
    q.add_argument("--replace", action="store_true", help="replace a registration")
    q.add_argument("--index", help="its index (path or URI; default: beside the file)")
    q.add_argument("file", help="a path, s3://BUCKET/KEY or https:// URL")
    q.set_defaults(func=cmd_reads_add)

    p = sub.add_parser("serve", help="serve the node over HTTP")
    p.add_argument("dir", type=Path)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--grpc-port", type=int, help="also serve the peer gRPC API on this port")
    p.add_argument("--workers", type=int, metavar="N",
                   help="N server processes on the port, supervised (default: one process)")
    p.add_argument(
        "--aggregator",
        type=Path,
        metavar="PEERS.yaml",
        help="serve Beacon v2 over the federation of PEERS.yaml instead of local data",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("federate", help="federated queries over the nodes of a PEERS.yaml")
    federate_sub = p.add_subparsers(dest="federate_command", required=True)
    q = federate_sub.add_parser(
        "count",
        help="allele counts summed over the federation (exit 1: some nodes failed)",
    )
    q.add_argument("--peers", type=Path, required=True, help="PEERS.yaml")
    q.add_argument("variants", nargs="*", metavar="VARIANT", help="CHROM:POS:REF:ALT")
    q.add_argument("--file", type=Path, help="variants, one per line, or a VCF")
    q.add_argument("--region", help="CHROM:START-END (1-based, inclusive)")
    q.add_argument("--deadline", type=float, help="seconds (default: from PEERS.yaml)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument(
        "--individuals",
        action="store_true",
        help="count individuals carrying every VARIANT (cohort count), not allele counts",
    )
    q.set_defaults(func=cmd_federate_count)
    q = federate_sub.add_parser(
        "checkpoints",
        help="keep each node's signed audit chain head in DIR (exit 1: some nodes failed)",
    )
    q.add_argument("--peers", type=Path, required=True, help="PEERS.yaml")
    q.add_argument("--dir", type=Path, required=True, help="where the checkpoints are kept")
    q.add_argument("--deadline", type=float, help="seconds (default: from PEERS.yaml)")
    q.set_defaults(func=cmd_federate_checkpoints)

    p = sub.add_parser("demo", help="build the embedded demo node and serve it")
    p.add_argument("--dir", type=Path, default=Path("demo-node"))
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--rebuild", action="store_true", help="rebuild the demo node from scratch")
    p.add_argument("--no-serve", action="store_true", help="build and summarise only")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("metadata", help="metadata catalog (Beacon-Friendly-Format JSON)")
    metadata_sub = p.add_subparsers(dest="metadata_command", required=True)
    q = metadata_sub.add_parser("load", help="load BFF files for a dataset (atomic, replaces)")
    q.add_argument("dir", type=Path)
    q.add_argument("--dataset", required=True, help="dataset id (as used by `ingest`)")
    q.add_argument("--ontology", type=Path, help="OBO or JSON ontology file adding terms")
    q.add_argument("files", nargs="+", help="BFF files (individuals.json, ...) or folders")
    q.set_defaults(func=cmd_metadata_load)

    p = sub.add_parser("audit", help="the access audit log")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    q = audit_sub.add_parser("verify", help="check the hash chain: exit 1 if tampered")
    q.add_argument("dir", type=Path)
    q.add_argument("--key", type=Path, help="the node's audit public key (PEM, from "
                   "`fednode audit key`): check the signed checkpoints too")
    q.add_argument("--checkpoints", type=Path, nargs="+", default=[], metavar="FILE",
                   help="signed checkpoints kept outside the node (`fednode federate "
                   "checkpoints`): a rewrite after any of them is detected")
    q.set_defaults(func=cmd_audit_verify)
    q = audit_sub.add_parser("key", help="print the public key that signs audit checkpoints")
    q.add_argument("dir", type=Path)
    q.set_defaults(func=cmd_audit_key)

    p = sub.add_parser("config", help="configuration")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    q = config_sub.add_parser("print", help="print the effective configuration (or its schema)")
    q.add_argument("dir", type=Path, nargs="?", default=Path("."))
    q.add_argument("--schema", action="store_true", help="print the JSON schema instead")
    q.set_defaults(func=cmd_config_print)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.func is cmd_ingest and not any(a.startswith("-") for a in extra):
        # `ingest`'s inputs may be none (--files-from), so argparse matches them before
        # the options and leaves the usual `ingest DIR --dataset ID FILE...` ones over.
        args.files.extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Command = args.func
    try:
        return func(args)
    except NodeError as exc:
        print(f"fednode: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fednode: interrupted", file=sys.stderr)
        return 130
