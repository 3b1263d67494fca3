"""RecordIO packing of a .lst, every image checked."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from operators.run_record import RunStepOperator, pipeline_step
from operators.storage import (
    local_copy,
    local_files,
    upload,
    write_text,
)
from tasks.data.lst_validation import (
    LstValidationError,
    entry_problems,
    inspect_images,
    validate_lst,
)
from tasks.data.pack import PackOptions, pack_lst
from tasks.data.profile import PROFILE, ProfileRow, profile_beside, write_profile
from tasks.problems import describe


class RecordIOPackOperator(RunStepOperator):
    """Packs a `.lst` and its images into `<name>.rec` + `<name>.idx` (im2rec's byte format).

    :param lst_uri: the image list (templated).
    :param images_uri: the root the list's paths are relative to (templated).
    :param output_uri: folder for the `.rec`, `.idx` and, when given, `classes.json`; the data
        profile (the list's name as its split) goes beside it (templated).
    :param class_names: class names in label order (a list or its JSON), written as
        `classes.json` (templated).
    :param options: im2rec's encoding options (pass-through, resize, quality, ...).
    :param num_workers: encoding processes; records keep the list order.
    """

    uri_fields = ("lst_uri", "images_uri", "output_uri")
    template_fields: Sequence[str] = ("lst_uri", "images_uri", "output_uri", "class_names")

    def __init__(
        self,
        *,
        lst_uri: str,
        images_uri: str,
        output_uri: str,
        class_names: Sequence[str] | str | None = None,
        options: PackOptions | None = None,
        num_workers: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lst_uri, self.images_uri, self.output_uri = lst_uri, images_uri, output_uri
        self.class_names, self.options = class_names, options or PackOptions()
        self.num_workers = num_workers

    @pipeline_step
    def execute(self, context: Any) -> dict[str, Any]:
        out = self.output_uri.rstrip("/")
        name = self.lst_uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".lst")
        names = self.class_names
        if isinstance(names, str):
            names = json.loads(names) if names.strip() else None
        with local_copy(self.lst_uri) as lst_path:
            entries = validate_lst(lst_path, num_classes=len(names) if names else None)
        # Only this list's images are fetched (one split of a dataset in object storage).
        with local_files(self.images_uri, [e.path for e in entries]) as root:
            # Every missing or undecodable image of the list before packing; what the others
            # are goes into the run's data profile.
            found = inspect_images([root / e.path for e in entries])
            problems = entry_problems(entries, found)
            if problems:
                raise LstValidationError(describe(self.lst_uri, problems))
            with tempfile.TemporaryDirectory() as tmp:
                rows = (
                    ProfileRow(name, int(e.labels[0]), e.path, f)
                    for e, f in zip(entries, found, strict=True)
                )
                upload(write_profile(Path(tmp) / PROFILE, rows), profile_beside(out))
                rec, idx = Path(tmp) / f"{name}.rec", Path(tmp) / f"{name}.idx"
                result = pack_lst(
                    entries,
                    root,
                    rec,
                    idx,
                    options=self.options,
                    num_workers=self.num_workers,
                    source=self.lst_uri,
                )
                upload(idx, f"{out}/{name}.idx")
                upload(rec, f"{out}/{name}.rec")
        if names:
            write_text(f"{out}/classes.json", json.dumps(list(names)) + "\n")
        self.log.info("packed %d records into %s/%s.rec", result.records, out, name)
        return {
            "rec": f"{out}/{name}.rec",
            "idx": f"{out}/{name}.idx",
            "profile": profile_beside(out),
            "records": result.records,
        }
