"""The review page: a small ASGI app (Starlette, Jinja2 templates with escaping on, served by uvicorn)
over an open catalogue and the duplicate groups found when it started.

Security: the server binds 127.0.0.1 unless told otherwise. Every request needs the random token of the
printed URL (kept in a same-site cookie after the first visit) and a Host header naming this server (a
DNS-rebinding page cannot reach it); every action is a POST that must also carry the token in a header,
which no cross-site form or image can send. Images are served by catalogue id, only those of the groups
on the page, from the path the catalogue holds: nothing in a request is ever used as a path.
"""

from __future__ import annotations

import hmac
import os
import threading
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from catalog.actions import settle
from catalog.actions.apply import unchanged
from catalog.config import DEFAULT_CNN, CnnChoice
from catalog.grouping.keep import why_kept
from catalog.grouping.table import Grouping, Member
from catalog.ingest.formats import PhotoFacts, file_facts
from catalog.methods import get_method
from catalog.review.thumbs import Thumbnails
from catalog.store import Catalog, ImageInfo
from catalog.text import human_size

HERE = Path(__file__).parent
COOKIE = "catalog_review"
#: Groups per page fragment: the first arrive with the page, the rest as the reader scrolls.
PAGE = 12
#: Formats a browser shows as they are; others are converted for the larger view.
BROWSER_FORMATS = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
}


def shown(text: str) -> str:
    """A path as text a person can read: bytes that are not UTF-8 as \\xNN, control characters (a
    newline in a file name) as escapes. The template escapes the result for HTML."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(
        ch if unicodedata.category(ch)[0] != "C" else ch.encode("unicode_escape").decode("ascii")
        for ch in raw
    )


@dataclass
class ReviewGroup:
    id: int
    members: list[Member]
    #: open, settled (acted on), marked (not duplicates), skipped
    state: str = "open"
    notes: list[str] = field(default_factory=list)
    #: Why the reference is the one to keep (:func:`catalog.grouping.keep.why_kept`), said of the
    #: group as it was found: shown while its members are those (a decision changes them).
    why: str = ""
    found_ids: tuple[int, ...] = ()

    @property
    def reference(self) -> ImageInfo:
        return self.members[0].image


@dataclass
class Decision:
    """One decision made on the page, as much as its undo needs: the group as it was, and the journal
    entries (trash) or marks it made."""

    action: str  # "trash" or "marks"
    group: ReviewGroup
    members: list[Member]
    state: str
    entries: list[int] = field(default_factory=list)
    marks: list[tuple[str, str]] = field(default_factory=list)


class Review:
    """The page's state: the groups found at start, as decisions change them."""

    def __init__(
        self,
        catalog: Catalog,
        found: Grouping,
        thumbnails: Thumbnails,
        token: str,
        hosts: set[str],
        any_host: bool = False,
        cnn: CnnChoice = DEFAULT_CNN,
    ):
        self.catalog, self.found, self.thumbnails = catalog, found, thumbnails
        #: The Host headers this server answers to (a DNS-rebinding page names another); any, when it
        #: serves the network on purpose.
        self.token, self.hosts, self.any_host = token, hosts, any_host
        #: The groups the page has shown or changed, by number (from 1): a million-image answer has
        #: tens of thousands, and the page shows a dozen at a time, so each is made when first asked for.
        self._made: dict[int, ReviewGroup] = {}
        table = found.table
        self._sizes = np.diff(table.starts).tolist()
        #: The only images this page serves: those of its groups.
        self.served = set(table.images.id[table.member].tolist())
        self.lock = threading.Lock()
        self.cnn = cnn  # for cataloguing files that an undo puts back
        #: This page's decisions, newest last, for its Undo button.
        self.history: list[Decision] = []

    def group(self, group_id: int) -> ReviewGroup | None:
        """Group number ``group_id`` (None: there is none)."""
        if not 1 <= group_id <= len(self._sizes):
            return None
        made = self._made.get(group_id)
        if made is None:
            table = self.found.table
            begin, end = int(table.starts[group_id - 1]), int(table.starts[group_id])
            why = why_kept(table.images, table.member[begin:end], np.asarray([0, end - begin]))[0]
            members = table.group(group_id - 1)
            found = tuple(m.image.id for m in members)
            made = self._made[group_id] = ReviewGroup(group_id, members, why=shown(why), found_ids=found)
        return made

    def _open(self, group_id: int) -> bool:
        made = self._made.get(group_id)  # a group never asked for is as it was found: open, 2 or more
        return made is None or (made.state == "open" and len(made.members) > 1)

    def open_groups(self, after: int = 0, limit: int | None = None) -> list[ReviewGroup]:
        """The open groups numbered above ``after``, in order (at most ``limit``)."""
        found: list[ReviewGroup] = []
        for group_id in range(after + 1, len(self._sizes) + 1):
            if limit is not None and len(found) >= limit:
                break
            if self._open(group_id):
                found.append(self.group(group_id))  # type: ignore[arg-type]
        return found

    def open_counts(self) -> tuple[int, int]:
        """(open groups, their redundant copies), counted from the groups as found and those changed."""
        groups, redundant = len(self._sizes), sum(self._sizes) - len(self._sizes)
        for group_id, made in list(self._made.items()):  # pages add groups meanwhile
            groups -= 1
            redundant -= self._sizes[group_id - 1] - 1
            if self._open(group_id):
                groups += 1
                redundant += len(made.members) - 1
        return groups, redundant

    def image(self, image_id: int) -> ImageInfo | None:
        """A catalogued image of a group on the page (never anything else)."""
        if image_id not in self.served:
            return None
        return self.catalog.image_info([image_id]).get(image_id)


class TokenMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: Any, review: Review):
        super().__init__(app)
        self.review = review

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        review = self.review
        if not review.any_host and request.headers.get("host", "") not in review.hosts:
            return Response("unknown host", status_code=403, media_type="text/plain")
        given = request.query_params.get("token")
        cookie = request.cookies.get(COOKIE, "")
        by_url = given is not None and hmac.compare_digest(given, review.token)
        if not by_url and not hmac.compare_digest(cookie, review.token):
            return Response(
                "forbidden: open the address catalog review printed (it carries the token)",
                status_code=403,
                media_type="text/plain",
            )
        if request.method != "GET" and not hmac.compare_digest(
            request.headers.get("x-catalog-token", ""), review.token
        ):
            return Response(
                "forbidden: actions need the page's token", status_code=403, media_type="text/plain"
            )
        response = await call_next(request)
        if by_url:
            response.set_cookie(COOKIE, review.token, httponly=True, samesite="strict")
        return response


def _when(mtime_ns: int) -> str:
    return datetime.fromtimestamp(mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M")


def _score(review: Review, member: Member) -> str:
    if member.score is None:
        return "reference"
    if review.found.method == "exact":
        return "identical bytes"
    method = get_method(review.found.method)
    alike = f"{method.similarity(member.score):.1f} % alike"  # the one scale of every method
    if review.found.method in ("ahash", "phash", "dhash", "whash"):
        return f"{alike} ({member.score:g} bits apart)"
    return f"{alike} (score {member.score:.3f})"


def _card(review: Review, member: Member, keep: bool, fresh: dict[int, ImageInfo]) -> dict[str, Any]:
    im = fresh.get(member.image.id)
    problem = "is no longer catalogued" if im is None else unchanged(im, False)
    im = _with_facts(im or member.image)
    return {
        "id": im.id,
        "keep": keep,
        "gone": problem,
        "name": shown(os.path.basename(im.path)),
        "folder": shown(os.path.dirname(im.path)),
        "path": shown(im.path),
        "dims": f"{im.width}\u00d7{im.height}" if im.width else "?",
        "size": human_size(im.size),
        "format": im.format or "?",
        "modified": _when(im.mtime_ns),
        "score": _score(review, member),
        "taken": im.taken[:16].replace("T", " ") if im.taken else None,
        "camera": shown(im.camera) if im.camera else None,
    }


def _with_facts(image: ImageInfo) -> ImageInfo:
    """An image catalogued before photo facts were read gets them from its file's EXIF (headers only,
    once per file version) until the next ``index`` stores them."""
    if image.has_exif is not None:
        return image
    found = _file_facts(image.path, image.mtime_ns)
    return replace(
        image,
        taken=found.taken,
        camera_make=found.make,
        camera_model=found.model,
        has_gps=found.gps,
        has_exif=found.exif,
    )


@lru_cache(maxsize=100_000)
def _file_facts(path: str, mtime_ns: int) -> PhotoFacts:
    return file_facts(path)


def _group_context(review: Review, group: ReviewGroup) -> dict[str, Any]:
    fresh = review.catalog.image_info([m.image.id for m in group.members])
    cards = [_card(review, m, False, fresh) for m in group.members]
    # The keep order's choice (the reference) is marked, or the next best one still on disk.
    for card in cards:
        if not card["gone"]:
            card["keep"] = True
            break
    # Said of the group as found: while it holds those images, its reference on disk and first.
    same = tuple(m.image.id for m in group.members) == group.found_ids
    why = group.why if same and cards and cards[0]["keep"] else ""
    return {"id": group.id, "cards": cards, "notes": group.notes, "size": len(cards), "why": why}


def build_app(review: Review) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def page(request: Request) -> Response:
        groups = review.open_groups(limit=PAGE + 1)
        total, redundant = review.open_counts()
        context = {
            "token": review.token,
            "method": review.found.method,
            "threshold": f"{review.found.threshold:g}",
            "verified": review.found.verified,
            "images": review.found.images,
            "total": total,
            "redundant": redundant,
            "groups": [_group_context(review, g) for g in groups[:PAGE]],
            "next": groups[PAGE - 1].id if len(groups) > PAGE else None,
        }
        return templates.TemplateResponse(request, "review.html", context)

    def fragment(request: Request) -> Response:
        """The open groups after group number ``after`` (groups settled meanwhile shift no one)."""
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return Response("after must be a number", status_code=400)
        groups = review.open_groups(after, limit=PAGE + 1)
        context = {
            "groups": [_group_context(review, g) for g in groups[:PAGE]],
            "next": groups[PAGE - 1].id if len(groups) > PAGE else None,
        }
        return templates.TemplateResponse(request, "groups.html", context)

    def thumbnail(request: Request) -> Response:
        image = review.image(request.path_params["image_id"])
        if image is None or not image.content_hash:
            return Response("no such image", status_code=404)
        if unchanged(image, False) is not None:
            return Response("the file is gone or changed", status_code=410)
        out = review.thumbnails.get(image.path, image.content_hash)
        if out is None:
            return Response("cannot be read", status_code=410)
        return FileResponse(out, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def view(request: Request) -> Response:
        image = review.image(request.path_params["image_id"])
        if image is None:
            return Response("no such image", status_code=404)
        if unchanged(image, False) is not None:
            return Response("the file is gone or changed", status_code=410)
        media = BROWSER_FORMATS.get(image.format or "")
        if media is not None:
            return FileResponse(image.path, media_type=media)
        return Response(_as_jpeg(image.path), media_type="image/jpeg")

    def presence(request: Request) -> Response:
        ids = [int(i) for i in request.query_params.get("ids", "").split(",") if i.isdigit()][:500]
        result = {}
        for image_id in ids:
            image = review.image(image_id)
            result[str(image_id)] = "gone" if image is None else (unchanged(image, False) or "")
        return JSONResponse(result)

    async def keep(request: Request) -> Response:
        body = await request.json()
        return await _threaded(_keep, review, int(request.path_params["group_id"]), int(body.get("keep", 0)))

    async def not_duplicates(request: Request) -> Response:
        body = await request.json()
        image_id = body.get("image")
        return await _threaded(
            _not_duplicates,
            review,
            int(request.path_params["group_id"]),
            None if image_id is None else int(image_id),
        )

    async def skip(request: Request) -> Response:
        group = review.group(int(request.path_params["group_id"]))
        if group is None:
            return JSONResponse({"error": "no such group"}, status_code=404)
        group.state = "skipped"
        return _answer(review, {"group": group.id, "state": group.state})

    async def undo(request: Request) -> Response:
        return await _threaded(_undo, review)

    routes = [
        Route("/", page),
        Route("/groups", fragment),
        Route("/thumb/{image_id:int}", thumbnail),
        Route("/view/{image_id:int}", view),
        Route("/presence", presence),
        Route("/groups/{group_id:int}/keep", keep, methods=["POST"]),
        Route("/groups/{group_id:int}/not-duplicates", not_duplicates, methods=["POST"]),
        Route("/groups/{group_id:int}/skip", skip, methods=["POST"]),
        Route("/undo", undo, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(TokenMiddleware, review=review)])


async def _threaded(fn: Any, *args: Any) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)  # type: ignore[no-any-return]


def _keep(review: Review, group_id: int, keep_id: int) -> Response:
    """Keep one image of a group, trash the others (each checked, journaled, undoable)."""
    with review.lock:
        group = review.group(group_id)
        if group is None or group.state != "open":
            return JSONResponse({"error": "this group is already settled"}, status_code=409)
        kept = [m for m in group.members if m.image.id == keep_id]
        if not kept:
            return JSONResponse({"error": "that image is not in this group"}, status_code=400)
        # As the catalogue knows them now (watch may have moved or removed some): a file no longer
        # catalogued is skipped, never acted on.
        fresh = review.catalog.image_info([m.image.id for m in group.members])
        if keep_id not in fresh:
            return JSONResponse({"error": "the image to keep is no longer catalogued"}, status_code=409)
        others = [fresh[m.image.id] for m in group.members if m.image.id != keep_id and m.image.id in fresh]
        outcome = settle.act_on_group(review.catalog, fresh[keep_id], others, "trash")
        if outcome.done:
            entries = [entry for _, _, entry in outcome.done]
            review.history.append(Decision("trash", group, list(group.members), group.state, entries=entries))
        done = {step.image.id for step, _, _ in outcome.done}
        group.members = [kept[0], *(m for m in group.members if m.image.id not in done and m is not kept[0])]
        group.notes = [f"{shown(os.path.basename(p))}: {reason}" for p, reason in outcome.skipped]
        group.state = "settled" if len(group.members) < 2 else "open"
        return _answer(
            review,
            {
                "group": group.id,
                "state": group.state,
                "trashed": [shown(step.image.path) for step, _, _ in outcome.done],
                "skipped": [{"path": shown(p), "reason": r} for p, r in outcome.skipped],
                "batch": outcome.batch,
            },
        )


def _not_duplicates(review: Review, group_id: int, image_id: int | None) -> Response:
    """Mark the whole group (or one image against the rest) as not duplicates."""
    with review.lock:
        group = review.group(group_id)
        if group is None or group.state != "open":
            return JSONResponse({"error": "this group is already settled"}, status_code=409)
        hashes = {m.image.id: m.image.content_hash or "" for m in group.members}
        if image_id is not None and image_id not in hashes:
            return JSONResponse({"error": "that image is not in this group"}, status_code=400)
        if image_id is None:
            distinct = sorted(set(hashes.values()))
            pairs = [(a, b) for k, a in enumerate(distinct) for b in distinct[k + 1 :]]
        else:
            own = hashes[image_id]
            pairs = [(own, h) for h in set(hashes.values()) if h != own]
        known = {(a, b) for a, b, _ in review.catalog.marks()}
        new = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b} - known)
        added = review.catalog.add_marks(new)
        review.history.append(Decision("marks", group, list(group.members), group.state, marks=new))
        if image_id is None:
            group.state = "marked"
        else:
            group.members = [m for m in group.members if m.image.id != image_id]
            if len(group.members) < 2:
                group.state = "marked"
        return _answer(review, {"group": group.id, "state": group.state, "marks": added})


def _undo(review: Review) -> Response:
    """Undo this page's last decision: files put back (and catalogued again), or marks removed; the group
    comes back as it was."""
    with review.lock:
        if not review.history:
            return JSONResponse({"error": "nothing to undo on this page"}, status_code=409)
        decision = review.history.pop()
        failed: list[str] = []
        if decision.action == "trash":
            result = settle.undo(review.catalog, "ids", decision.entries, review.cnn)
            failed = [f"{shown(e.path)}: {reason}" for e, reason in result.outcome.failed]
        else:
            review.catalog.remove_marks(decision.marks)
        members = []
        for member in decision.members:  # a file put back was catalogued again, under a new id
            image = review.catalog.image_at(member.image.path)
            if image is not None:
                members.append(Member(image, member.score))
                review.served.add(image.id)
        group = decision.group
        group.members, group.state, group.notes = members, decision.state, failed
        return _answer(review, {"group": group.id, "undone": decision.action, "failed": failed})


def _answer(review: Review, payload: dict[str, Any]) -> JSONResponse:
    """A decision's answer, with the page's counts after it (its header shows them)."""
    groups, redundant = review.open_counts()
    return JSONResponse({**payload, "open": groups, "redundant": redundant})


def _as_jpeg(path: str) -> bytes:
    """A format the browser does not show (HEIC, TIFF, RAW ...) as a JPEG of at most 2048 px."""
    import io

    from PIL import Image, ImageOps

    from catalog.ingest.formats import RAW_SUFFIXES, heif_ready

    heif_ready()
    suffix = os.path.splitext(path)[1].lower()
    if suffix in RAW_SUFFIXES:  # the preview or a half-size demosaic, as indexing reads it
        from catalog.ingest.imaging import decode

        with open(path, "rb") as f:
            shown_img = decode(f.read(), suffix=suffix).rgb
    else:
        with Image.open(path) as img:
            img.draft("RGB", (2048, 2048))
            shown_img = (ImageOps.exif_transpose(img) or img).convert("RGB")
    shown_img.thumbnail((2048, 2048))
    buffer = io.BytesIO()
    shown_img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def serve(review: Review, sock: Any) -> None:
    """Serve the page until Ctrl-C or SIGTERM (uvicorn; its signal handling ends the serving, then the
    signal is raised again for the caller's own handling)."""
    import uvicorn

    config = uvicorn.Config(
        build_app(review), log_level="warning", access_log=False, timeout_graceful_shutdown=1, lifespan="off"
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
