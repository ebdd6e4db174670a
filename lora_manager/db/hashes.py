"""Reads and writes of ``model_file``'s hashes, and the queries behind ``verify`` and ``duplicates``.

A stored hash is *trusted* only while the row's ``size`` and ``mtime_ns`` still equal the
``hashed_size`` and ``hashed_mtime_ns`` it was computed at: a file replaced in place must
never pass as verified or as a copy of another. Sidecar claims never enter this module's
grouping; only hashes we computed do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, func, or_, select, tuple_, update

from lora_manager.db.key_ranges import chunks, under
from lora_manager.db.schema import adapter, entry, import_run, model_file

# Every computed-hash column: what a file that changed loses.
HASH_COLUMNS = ("sha256", "tensor_sha256", "autov3", "autov3_source", "hashed_size", "hashed_mtime_ns", "hashed_at")


def trusted() -> Any:
    """Rows whose SHA256 was computed at the size and mtime the row records now."""
    c = model_file.c
    return and_(c.sha256.is_not(None), c.hashed_size == c.size, c.hashed_mtime_ns == c.mtime_ns)


class FileRow(NamedTuple):
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    tensor_sha256: str | None
    autov3_source: str | None
    hashed_size: int | None
    hashed_mtime_ns: int | None
    missing_since: datetime | None

    def current_at(self, size: int, mtime_ns: int) -> bool:
        """Whether the stored SHA256 describes the file as it is now (``size``, ``mtime_ns``)."""
        return self.sha256 is not None and (self.hashed_size, self.hashed_mtime_ns) == (size, mtime_ns)


_FILE_COLUMNS = [model_file.c[name] for name in FileRow._fields]


def _scoped(column: Any, folders: Sequence[str], files: Sequence[str]) -> Any:
    return or_(*(under(column, f) for f in folders), column.in_(list(files)))


def load_files(conn: Connection, folders: Sequence[str] = (), files: Sequence[str] = ()) -> list[FileRow]:
    """Tracked model files under ``folders`` or named in ``files``; every one when both are empty."""
    stmt = select(*_FILE_COLUMNS).order_by(model_file.c.path)
    if not folders and not files:
        return [FileRow(*r) for r in conn.execute(stmt)]
    rows: dict[str, FileRow] = {}
    if folders:
        rows.update((r[0], FileRow(*r)) for r in conn.execute(stmt.where(_scoped(model_file.c.path, folders, ()))))
    for part in chunks(sorted(set(files))):
        rows.update((r[0], FileRow(*r)) for r in conn.execute(stmt.where(model_file.c.path.in_(part))))
    return [rows[p] for p in sorted(rows)]


def library_roots(conn: Connection) -> list[str]:
    """Every folder an import was ever run on (real paths, as ``resolve_root`` gave them), shortest first."""
    roots: set[str] = set()
    for (recorded,) in conn.execute(select(import_run.c.roots)):
        roots.update(r for r in recorded or () if isinstance(r, str) and r)
    return sorted(roots, key=lambda r: (len(r), r))


def adapter_files(conn: Connection, query: str) -> list[str]:
    """Model files of catalogued LoRAs whose name contains ``query``, case-insensitively.

    Compared in Python: SQLite's ``lower()`` folds ASCII only, and names are often not ASCII.
    """
    needle = query.casefold()
    rows = conn.execute(select(adapter.c.name, adapter.c.file_path))
    return sorted({path for name, path in rows if needle in name.casefold()})


def mark_present(conn: Connection, paths: Sequence[str]) -> None:
    for part in chunks(paths):
        conn.execute(update(model_file).where(model_file.c.path.in_(part)).values(missing_since=None))


def record_stats(conn: Connection, rows: Sequence[dict[str, Any]], drop_hashes: bool) -> None:
    """Store a new size and mtime (``path``, ``size``, ``mtime_ns``) seen on disk; optionally drop the hashes."""
    if not rows:
        return
    values: dict[str, Any] = {"size": bindparam("b_size"), "mtime_ns": bindparam("b_mtime_ns")}
    if drop_hashes:
        values.update(dict.fromkeys(HASH_COLUMNS))
    stmt = update(model_file).where(model_file.c.path == bindparam("b_path")).values(values)
    conn.execute(stmt, [{f"b_{k}": r[k] for k in ("path", "size", "mtime_ns")} for r in rows])


def store_hashes(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store computed hashes. A row without ``sha256`` is a tensor-only pass: the SHA256 stays as it is."""
    full = [r for r in rows if r.get("sha256")]
    partial = [r for r in rows if not r.get("sha256")]
    where = model_file.c.path == bindparam("b_path")
    if full:
        keys = ("sha256", "tensor_sha256", "autov3", "autov3_source", "size", "mtime_ns", "hashed_at")
        values: dict[str, Any] = {k: bindparam(f"b_{k}") for k in keys}
        values.update(hashed_size=bindparam("b_size"), hashed_mtime_ns=bindparam("b_mtime_ns"), missing_since=None)
        conn.execute(
            update(model_file).where(where).values(values),
            [{f"b_{k}": r[k] for k in ("path", *keys)} for r in full],
        )
    if partial:
        tensor_keys = ("tensor_sha256", "autov3", "autov3_source")
        # Only while the SHA256 still describes the size and mtime the tensor pass saw.
        guard = and_(
            where, model_file.c.hashed_size == bindparam("b_size"), model_file.c.hashed_mtime_ns == bindparam("b_mtime")
        )
        conn.execute(
            update(model_file).where(guard).values({k: bindparam(f"b_{k}") for k in tensor_keys}),
            [
                {"b_path": r["path"], "b_size": r["size"], "b_mtime": r["mtime_ns"]}
                | {f"b_{k}": r[k] for k in tensor_keys}
                for r in partial
            ],
        )


class ClaimRow(NamedTuple):
    """One catalogued LoRA, the hashes its sidecars claim, and what we computed for its file."""

    name: str
    version: str | None
    file_path: str
    claimed_sha256: str | None
    claimed_autov2: str | None
    claimed_autov3: str | None
    hash_sources: dict[str, str]
    sidecars: list[dict[str, Any]]
    adapter_missing: bool
    file: FileRow | None


def claims(conn: Connection, folders: Sequence[str] = (), files: Sequence[str] = ()) -> Iterator[ClaimRow]:
    """Every catalogued LoRA (under ``folders`` or with a file in ``files``) with its model file's row,
    fetched in batches as they are checked (not all held: memory stays flat with the catalog's size)."""
    a = adapter.c
    stmt = (
        select(
            a.name,
            a.version,
            a.file_path,
            a.primary_file_sha256,
            a.primary_file_autov2,
            a.primary_file_autov3,
            a.hash_sources,
            a.sidecars,
            a.missing_since,
            *_FILE_COLUMNS,
        )
        .select_from(adapter.outerjoin(model_file, model_file.c.path == a.file_path))
        .order_by(a.file_path, a.name, a.version_key)
    )
    if folders or files:
        stmt = stmt.where(_scoped(a.file_path, folders, files))
    for r in conn.execution_options(yield_per=500).execute(stmt):
        file = FileRow(*r[9:]) if r[9] is not None else None
        name, version, path, sha256, autov2, autov3, sources, sidecars, missing = r[:9]
        yield ClaimRow(name, version, path, sha256, autov2, autov3, sources or {}, sidecars or [], bool(missing), file)


def groups_by(conn: Connection, column: str, distinct_sha256: bool = False) -> list[list[FileRow]]:
    """Trusted, present rows sharing one value of ``column`` (``sha256`` or ``tensor_sha256``), two or more.

    With ``distinct_sha256``, only groups whose members differ in SHA256: same weights, another header.
    """
    key = model_file.c[column]
    alive = and_(trusted(), model_file.c.missing_since.is_(None), key.is_not(None))
    having = func.count(func.distinct(model_file.c.sha256)) if distinct_sha256 else func.count()
    keys = [k for (k,) in conn.execute(select(key).where(alive).group_by(key).having(having >= 2).order_by(key))]
    groups: dict[str, list[FileRow]] = {}
    for part in chunks(keys):
        rows = conn.execute(select(*_FILE_COLUMNS).where(alive, key.in_(part)).order_by(model_file.c.path))
        for r in rows:
            row = FileRow(*r)
            groups.setdefault(getattr(row, column), []).append(row)
    return [groups[k] for k in keys if k in groups]


class IdentityClaim(NamedTuple):
    """A file that claims a ``(name, version)`` someone holds; ``winner`` marks the catalogued one."""

    name: str
    version_key: str
    path: str
    winner: bool
    sha256: str | None  # computed and trusted, else None
    size: int | None = None  # as the last import saw the file; None when it is no model file known


def claimed_identities(conn: Connection) -> list[list[IdentityClaim]]:
    """Groups of files claiming one ``(name, version)``: the catalogued file first, then the duplicates."""
    dupes = conn.execute(
        select(entry.c.name, entry.c.version_key, func.coalesce(entry.c.model_path, entry.c.key))
        .where(entry.c.status == "duplicate", entry.c.name.is_not(None))
        .order_by(entry.c.name, entry.c.version_key, entry.c.key)
    ).all()
    by_ident: dict[tuple[str, str], list[str]] = {}
    for name, version_key, path in dupes:
        by_ident.setdefault((name, version_key or ""), []).append(path)
    winners: dict[tuple[str, str], str] = {}
    for part in chunks(sorted(by_ident)):
        rows = conn.execute(
            select(adapter.c.name, adapter.c.version_key, adapter.c.file_path).where(
                tuple_(adapter.c.name, adapter.c.version_key).in_(part)
            )
        )
        winners.update(((n, v), p) for n, v, p in rows)
    paths = sorted({p for ps in by_ident.values() for p in ps} | set(winners.values()))
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for names in chunks(paths):
        q = select(model_file.c.path, model_file.c.sha256).where(trusted(), model_file.c.path.in_(names))
        hashes.update((p, h) for p, h in conn.execute(q))
        q = select(model_file.c.path, model_file.c.size).where(model_file.c.path.in_(names))
        sizes.update((p, n) for p, n in conn.execute(q))
    groups = []
    for ident, losers in sorted(by_ident.items()):
        members = [(winners[ident], True)] if ident in winners else []
        members += [(p, False) for p in losers]
        groups.append([IdentityClaim(*ident, p, w, hashes.get(p), sizes.get(p)) for p, w in members])
    return groups


def count_unhashed(conn: Connection) -> int:
    """Present model files without a trusted SHA256: what ``duplicates`` cannot see yet."""
    c = model_file.c
    untrusted = or_(
        c.sha256.is_(None),
        c.hashed_size.is_(None),
        c.hashed_mtime_ns.is_(None),
        c.hashed_size != c.size,
        c.hashed_mtime_ns != c.mtime_ns,
    )
    stmt = select(func.count()).select_from(model_file).where(c.missing_since.is_(None), untrusted)
    return int(conn.execute(stmt).scalar_one())


# ``on_disk(path, size, mtime_ns)``: "same" when the file is there at that size and mtime,
# "changed" when it is there otherwise, "gone" when it is not. The service passes one that stats.
OnDisk = Callable[[str, int, int], str]


@dataclass
class Mismatch:
    """A hash a sidecar (or the header) claims that the file's computed hash contradicts."""

    name: str
    version: str | None
    path: str
    hash: str  # sha256 | autov2 | autov3
    claimed: str
    computed: str
    source: str | None  # the sidecar dialect, or "header"
    sidecar: str | None  # the file that made the claim


@dataclass
class VerifyReport:
    ok: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)  # claims, but no current computed hash to check
    no_claim: int = 0
    missing: list[str] = field(default_factory=list)
    # Of ``unverified``: hashed, but the only claim is an AutoV3, which needs the tensor hash.
    autov3_only: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "mismatches": [m.__dict__ for m in self.mismatches],
            "unverified": len(self.unverified),
            "unverified_files": self.unverified,
            "unverified_autov3_only": self.autov3_only,
            "no_claim": self.no_claim,
            "missing": self.missing,
        }


def verify(conn: Connection, on_disk: OnDisk, folders: Sequence[str] = (), files: Sequence[str] = ()) -> VerifyReport:
    """Check every claimed hash against the computed one, where the computed one is current."""
    report = VerifyReport()
    for row in claims(conn, folders, files):
        raw = {"sha256": row.claimed_sha256, "autov2": row.claimed_autov2, "autov3": row.claimed_autov3}
        claimed = {k: v.strip().lower() for k, v in raw.items() if v and v.strip()}
        if "sha256" in claimed:
            claimed.pop("autov2", None)  # its prefix: checking it again says nothing new
        if not claimed:
            report.no_claim += 1
            continue
        f = row.file
        state = "gone" if row.adapter_missing else on_disk(row.file_path, f.size, f.mtime_ns) if f else "untracked"
        if state == "gone":
            report.missing.append(row.file_path)
            continue
        if f is None or f.sha256 is None or state != "same" or not f.current_at(f.size, f.mtime_ns):
            report.unverified.append(row.file_path)
            continue
        computed = {"sha256": f.sha256, "autov2": f.sha256[:10], "autov3": (f.tensor_sha256 or "")[:12]}
        checks = {k: v for k, v in claimed.items() if computed[k]}
        if not checks:
            report.unverified.append(row.file_path)  # claims AutoV3 only, and we have no tensor hash
            report.autov3_only.append(row.file_path)
            continue
        bad = [k for k, v in checks.items() if v[: len(computed[k])] != computed[k]]
        for k in bad:
            source = row.hash_sources.get(k)
            sidecar = row.file_path if source == "header" else _sidecar_of(row.sidecars, source)
            report.mismatches.append(
                Mismatch(row.name, row.version, row.file_path, k, checks[k], computed[k], source, sidecar)
            )
        report.ok += not bad
    return report


def _sidecar_of(sidecars: list[dict[str, Any]], dialect: str | None) -> str | None:
    return next((s.get("path") for s in sidecars if s.get("dialect") == dialect), None)


@dataclass
class DuplicateGroup:
    kind: str  # copies: same SHA256 | reheadered: same tensor data, other SHA256 | claimed: one (name, version)
    key: str
    files: list[dict[str, Any]]
    freeable: int = 0  # bytes freed by keeping one copy (copies only)


@dataclass
class DuplicatesReport:
    groups: list[DuplicateGroup] = field(default_factory=list)
    unhashed: int = 0  # present files without a current hash: invisible to the first two kinds
    stale: set[str] = field(default_factory=set)  # hashed, but changed or gone on disk since

    @property
    def freeable(self) -> int:
        return sum(g.freeable for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: [] for k in ("copies", "reheadered", "claimed")}
        for g in self.groups:
            out[g.kind].append({"key": g.key, "freeable_bytes": g.freeable, "files": g.files})
        return {**out, "freeable_bytes": self.freeable, "unhashed": self.unhashed, "stale": sorted(self.stale)}


def duplicates(conn: Connection, on_disk: OnDisk) -> DuplicatesReport:
    """Copies, re-headered copies and identity clashes, from computed hashes only."""
    report = DuplicatesReport(unhashed=count_unhashed(conn))
    for kind, column in (("copies", "sha256"), ("reheadered", "tensor_sha256")):
        for rows in groups_by(conn, column, distinct_sha256=kind == "reheadered"):
            same = [on_disk(r.path, r.size, r.mtime_ns) == "same" for r in rows]
            here = [r for r, ok in zip(rows, same, strict=True) if ok]
            # By position: asking ``r not in here`` of every row was quadratic (50,000 copies: 25 s).
            report.stale.update(r.path for r, ok in zip(rows, same, strict=True) if not ok)
            if len(here) < 2 or (kind == "reheadered" and len({r.sha256 for r in here}) < 2):
                continue
            used = catalogued(conn, [r.path for r in here])
            files = [
                {
                    "path": r.path,
                    "size": r.size,
                    "sha256": r.sha256,
                    "autov3": (r.tensor_sha256 or "")[:12] or None,
                    "catalogued": r.path in used,
                }
                for r in here
            ]
            freeable = sum(r.size for r in here[1:]) if kind == "copies" else 0
            report.groups.append(DuplicateGroup(kind, str(getattr(here[0], column)), files, freeable))
    for members in claimed_identities(conn):
        key = f"{members[0].name} {members[0].version_key}".strip()
        files = [{"path": m.path, "size": m.size, "catalogued": m.winner, "sha256": m.sha256} for m in members]
        report.groups.append(DuplicateGroup("claimed", key, files))
    return report


def catalogued(conn: Connection, paths: Sequence[str]) -> set[str]:
    """Which of ``paths`` a catalogued LoRA uses as its file."""
    found: set[str] = set()
    for part in chunks(list(paths)):
        found.update(conn.execute(select(adapter.c.file_path).where(adapter.c.file_path.in_(part))).scalars())
    return found
