"""What an algorithm answers one real-time request with: the media types it accepts in `Accept`
and the function that turns a batch of encoded images into one response body each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.errors import InputError

Body = tuple[bytes, str]
"""A response body and its Content-Type."""
Respond = Callable[[Any, list[bytes], str], list[Body | InputError]]
"""(loaded model, encoded images, accepted type) -> a body, or the sentence why not, per image."""

REQUEST = "request body"
"""How an image sent to the endpoint is named in messages."""


@dataclass(frozen=True)
class Responses:
    """The media types an algorithm's endpoint returns (the first is the default for `*/*` or
    no Accept) and how it makes them."""

    accept: Sequence[str]
    respond: Respond

    def choose(self, header: str | None) -> str | None:
        """The type to answer with for an Accept header, None when none is offered."""
        for entry in (header or "*/*").split(","):
            parts = [p.strip() for p in entry.split(";") if p.strip()]
            if not parts:
                continue
            media = ";".join(p for p in parts if not p.startswith("q="))
            if media in ("*/*", "*"):
                return self.accept[0]
            if media in self.accept:
                return media
        return None


def one_by_one(respond: Respond, model: Any, images: list[bytes], accept: str) -> list:
    """The answers of a batch; when the batch fails on bad input, each image alone, so that only
    the bad ones get their sentence."""
    try:
        return respond(model, images, accept)
    except InputError as e:
        if len(images) == 1:
            return [e]
    answers: list = []
    for image in images:
        try:
            answers += respond(model, [image], accept)
        except InputError as e:
            answers.append(e)
    return answers
