"""kubectl and helm for the e2e tests, plus what to print when a step fails.

Every call goes through the real binaries against the kind cluster `make e2e` created (its
kubeconfig in ``RESTLAKE_E2E_KUBECONFIG``). A failing test gets the state of the pods concerned
attached to its report: ``kubectl get pods``, ``kubectl describe`` and the logs (current and
previous container) of every pod that is not ready.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class KubeError(AssertionError):
    """A kubectl or helm command failed; the message holds the command and its output."""


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 2.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except (AssertionError, KubeError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"[:4000])
        time.sleep(interval)


def load_module(name: str, path: Path) -> Any:
    """Import a script by path (tests/e2e and tests/k8s are folders of scripts, not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Kube:
    kubeconfig: Path
    kubectl_bin: str
    helm_bin: str

    def _run(
        self, cmd: list[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubeError(
                f"`{' '.join(cmd[:8])}...` exited {proc.returncode}:\n"
                f"{proc.stderr[-3000:]}{proc.stdout[-2000:]}"
            )
        return proc

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._run(
            [self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            check=check,
            timeout=timeout,
        )

    def helm(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self._run(
            [self.helm_bin, "--kubeconfig", str(self.kubeconfig), *args],
            input=None,
            check=check,
            timeout=timeout,
        )

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, namespace: str, document: str) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=document)

    def create(self, namespace: str, *args: str) -> None:
        """``kubectl create ARGS`` as an apply, so a rerun against a kept cluster (KEEP=1) works."""
        rendered = self.kubectl("create", "-n", namespace, *args, "--dry-run=client", "-o", "yaml").stdout
        self.apply(namespace, rendered)

    def exists(self, kind: str, name: str, namespace: str) -> bool:
        scope = ["-n", namespace] if namespace else []
        proc = self.kubectl("get", kind, name, *scope, "--ignore-not-found", "-o", "name", check=False)
        return bool(proc.stdout.strip())

    def exec(self, namespace: str, target: str, *command: str, input: str | None = None) -> str:
        """``kubectl exec`` into ``target`` (pod or deploy/NAME); stdout of the command."""
        return self.kubectl("exec", "-i", "-n", namespace, target, "--", *command, input=input).stdout

    def rollout(self, namespace: str, target: str, timeout: int = 600) -> None:
        self.kubectl(
            "rollout", "status", "-n", namespace, target, f"--timeout={timeout}s", timeout=timeout + 30
        )

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The pods matching ``selector`` that are not on their way out (a rollout's old ones are)."""
        items = self.json("get", "pods", "-n", namespace, "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def diagnose(self, namespaces: list[str]) -> str:
        """What a person would look at first: pods, then describe and logs of those not ready."""
        out: list[str] = []
        listing = self.kubectl("get", "pods", "-A", "-o", "wide", check=False)
        out.append(f"$ kubectl get pods -A -o wide\n{listing.stdout}{listing.stderr}")
        # The sources' status and the operator's own account: what a failed step's probe looked at.
        sources = self.kubectl("get", "isrc", "-A", "-o", "yaml", check=False)
        out.append(f"$ kubectl get isrc -A -o yaml\n{sources.stdout[-8000:]}{sources.stderr}")
        # kubectl logs has no --all-namespaces: ask each namespace for the operator's pod.
        for namespace in namespaces:
            operator = self.kubectl(
                "logs",
                "-n",
                namespace,
                "-l",
                "app.kubernetes.io/component=operator",
                "--tail=120",
                check=False,
            )
            if operator.stdout.strip():
                out.append(f"$ kubectl logs -n {namespace} -l (the operator)\n{operator.stdout}")
        for namespace in namespaces:
            events = self.kubectl(
                "get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False
            ).stdout.splitlines()[-25:]
            out.append(f"$ kubectl get events -n {namespace} (last 25)\n" + "\n".join(events))
            try:
                pods = self.json("get", "pods", "-n", namespace)["items"]
            except KubeError as exc:
                out.append(str(exc))
                continue
            for pod in pods:
                name = pod["metadata"]["name"]
                statuses = (pod.get("status") or {}).get("containerStatuses") or []
                if statuses and all(s.get("ready") for s in statuses):
                    continue
                described = self.kubectl("describe", "pod", name, "-n", namespace, check=False).stdout
                out.append(f"$ kubectl describe pod {name} -n {namespace}\n{described[-6000:]}")
                for previous in ("", "--previous"):
                    logs = self.kubectl(
                        "logs",
                        name,
                        "-n",
                        namespace,
                        "--all-containers",
                        "--tail=80",
                        *([previous] if previous else []),
                        check=False,
                    )
                    if logs.stdout.strip():
                        out.append(f"$ kubectl logs {name} -n {namespace} {previous}\n{logs.stdout}")
        return "\n\n".join(out)
