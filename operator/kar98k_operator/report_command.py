"""`kar98k report NAMESPACE/NAME --report FILE...`: the reports of an in-cluster run.

Reads the LoadTest's `status.result` ConfigMap through the user's kubeconfig (the kubernetes
client of the `operator` extra) and renders the same JSON, HTML and JUnit reports `kar98k run`
writes. Registered with `kar98k` through the `kar98k.commands` entry point, so the CLI below
never imports the Kubernetes side. Exit 0 when the run passed (or had no thresholds), 1 when it
failed, 2 on bad input (unknown LoadTest, no stored result yet, no cluster): never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kar98k.commands import EXIT_INVALID, EXIT_OK, EXIT_USAGE, Subparsers
from kar98k.report import ReportFormatError, check_report_path, write_report
from kar98k.report.stored import DATA_KEY, StoredResultError, unpack
from kar98k.results import RunSummary

from . import names


class FetchError(Exception):
    """The stored result could not be fetched; the message says why."""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render the reports of a LoadTest run in a cluster",
        description=(
            "Render the stored result of an in-cluster LoadTest run (status.result) as the "
            "reports `kar98k run` writes. Exit 0 pass, 1 fail, 2 bad input."
        ),
    )
    parser.add_argument("target", metavar="NAMESPACE/NAME", help="the LoadTest")
    parser.add_argument(
        "--report",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="write a report; format by extension: .json .html .xml (JUnit); repeatable",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: standard)")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    namespace, _, name = str(args.target).partition("/")
    if not namespace or not name or "/" in name:
        print(f"expected NAMESPACE/NAME, got {args.target!r}", file=sys.stderr)
        return EXIT_USAGE
    if not args.report:
        print("give at least one --report FILE (.json, .html or .xml)", file=sys.stderr)
        return EXIT_USAGE
    try:
        for path in args.report:
            check_report_path(path)
        summary = fetch(namespace, name, kubeconfig=args.kubeconfig, context=args.context)
    except (ReportFormatError, FetchError, StoredResultError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    for path in args.report:
        try:
            write_report(summary, path)
        except OSError as exc:
            print(f"{path}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"wrote {path}")
    return EXIT_INVALID if summary.verdict == "fail" else EXIT_OK


def fetch(
    namespace: str, name: str, *, kubeconfig: str | None = None, context: str | None = None
) -> RunSummary:
    """The stored RunSummary of LoadTest namespace/name."""
    try:  # only this command needs the client; the core CLI runs without the extra
        from kubernetes import client, config  # noqa: PLC0415
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
        from urllib3.exceptions import HTTPError  # noqa: PLC0415
    except ImportError:
        raise FetchError(
            "kar98k report needs the kubernetes client: pip install 'kar98k[operator]'"
        ) from None

    where = f"LoadTest {namespace}/{name}"
    try:
        config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        api = client.ApiClient()
        loadtest: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.PLURAL, name
        )
        status = dict(loadtest.get("status") or {})
        stored = status.get("result")
        if not stored:
            phase = status.get("phase") or "Pending"
            raise FetchError(f"{where} has no stored result yet (phase {phase})")
        configmap = client.CoreV1Api(api).read_namespaced_config_map(stored, namespace)
    except ApiException as exc:
        what = {404: "not found", 403: "forbidden", 401: "unauthorized"}.get(exc.status, "")
        raise FetchError(f"{where}: {what or exc.reason} ({exc.status})") from None
    except (ConfigException, HTTPError, OSError) as exc:
        raise FetchError(f"cannot reach the cluster: {exc}") from None
    data = (configmap.binary_data or {}).get(DATA_KEY)
    if not data:
        raise FetchError(f"ConfigMap {namespace}/{stored} holds no {DATA_KEY}")
    return unpack(data)
