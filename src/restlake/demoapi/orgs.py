"""A parent -> child shape for ``spec.parent``: an organisation's repositories and each one's issues.

Shaped like a well-known code-hosting API (a repository listing with ``owner.login``, ``name`` and
``full_name``; an issue listing per repository, Link-header paginated, ``since`` filtered), with
made-up data. Small and mutable on purpose: tests change *one* repository or *one* issue between
two runs (``/_admin/orgs/touch``) and check exactly which child URLs the fetcher asks again.
Unlike the main dataset it does not move with the clock's ticks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from restlake.demoapi.timestamps import iso_z

_WORDS = ("atlas", "bramble", "cobalt", "drift", "ember", "fable", "garnet", "haze", "indigo", "juniper")


class OrgConfig(BaseModel):
    """How big the organisation is; equal configs give equal data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org: str = Field("acme", pattern=r"^[a-z][a-z0-9-]*$", description="The organisation's login.")
    repos: int = Field(4, ge=0, le=1000, description="Repositories of the organisation.")
    issues_per_repo: int = Field(5, ge=0, le=10_000, description="Issues of each repository at start.")
    epoch: datetime = Field(datetime(2024, 1, 1, tzinfo=UTC), description="Time of the initial data.")


@dataclass
class Repo:
    id: int
    name: str
    revision: int = 0
    issues: list[int] = field(default_factory=list)  # issue ids, in number order


@dataclass
class Issue:
    id: int
    number: int
    repo: str
    revision: int = 0


class OrgData:
    """The organisation's repositories and issues; every change bumps a revision and a timestamp."""

    def __init__(self, config: OrgConfig | None = None) -> None:
        self.config = config or OrgConfig()
        self.repos: dict[str, Repo] = {}
        self.issues: dict[int, Issue] = {}
        self.changes = 0  # each touch moves the clock one minute, so updated_at always grows
        for r in range(1, self.config.repos + 1):
            name = f"{_WORDS[(r - 1) % len(_WORDS)]}-{r}"
            repo = Repo(id=1000 + r, name=name)
            for n in range(1, self.config.issues_per_repo + 1):
                issue = Issue(id=repo.id * 10_000 + n, number=n, repo=name)
                self.issues[issue.id] = issue
                repo.issues.append(issue.id)
            self.repos[name] = repo

    def _at(self, revision: int) -> str:
        return iso_z(int((self.config.epoch + timedelta(minutes=revision)).timestamp() * 1000))

    def full_name(self, repo: Repo) -> str:
        return f"{self.config.org}/{repo.name}"

    def repo_json(self, repo: Repo) -> dict[str, Any]:
        return {
            "id": repo.id,
            "name": repo.name,
            "full_name": self.full_name(repo),
            "owner": {"login": self.config.org, "type": "Organization"},
            "description": f"The {repo.name} project (revision {repo.revision})",
            "open_issues_count": len(repo.issues),
            "updated_at": self._at(repo.revision),
        }

    def issue_json(self, issue: Issue) -> dict[str, Any]:
        repo = self.repos[issue.repo]
        return {
            "id": issue.id,
            "number": issue.number,
            "title": f"Issue {issue.number} of {repo.name} (revision {issue.revision})",
            "state": "open" if (issue.number + issue.revision) % 3 else "closed",
            "repository_url": f"/v1/repos/{self.config.org}/{repo.name}",
            "updated_at": self._at(issue.revision),
        }

    def repo_list(self) -> list[Repo]:
        return sorted(self.repos.values(), key=lambda r: r.id)

    def issue_list(self, repo: Repo, since_ms: int | None) -> list[Issue]:
        found = [self.issues[i] for i in repo.issues]
        if since_ms is not None:
            epoch_ms = int(self.config.epoch.timestamp() * 1000)
            found = [i for i in found if epoch_ms + i.revision * 60_000 >= since_ms]
        return found

    def last_modified_ms(self, revisions: list[int]) -> int:
        top = max(revisions, default=0)
        return int((self.config.epoch + timedelta(minutes=top)).timestamp() * 1000)

    # -- changes (the admin endpoint) ----------------------------------------------------------
    def touch(self, repo_name: str, issue_number: int | None = None) -> dict[str, Any]:
        """Revise one repository, or one issue of it; returns the changed record."""
        repo = self.repos.get(repo_name)
        if repo is None:
            raise KeyError(f"no repository {repo_name!r} in {self.config.org}")
        self.changes += 1
        if issue_number is None:
            repo.revision = self.changes
            return self.repo_json(repo)
        for issue_id in repo.issues:
            issue = self.issues[issue_id]
            if issue.number == issue_number:
                issue.revision = self.changes
                return self.issue_json(issue)
        raise KeyError(f"no issue #{issue_number} in {self.full_name(repo)}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
