"""Labels: the idempotent import of the classes being collected."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.db import transaction

from collector.models import Label


@dataclass
class LabelImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def labels_import(*, text: str) -> LabelImportResult:
    """One slug per line, or CSV rows slug,name,description. Idempotent."""
    from django.utils.text import slugify

    result = LabelImportResult()
    rows = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        if row[0].strip().lower() == "slug":  # header
            continue
        where = f"Line {reader.line_num}"
        if len(row) > 3:
            raise ValueError(f"{where}: expected slug[,name[,description]], got {len(row)} columns")
        slug = slugify(row[0].strip())
        if not slug:
            raise ValueError(f"{where}: not a usable slug: {row[0]!r}")
        name = row[1].strip() if len(row) > 1 and row[1].strip() else slug.replace("-", " ").capitalize()
        description = row[2].strip() if len(row) > 2 else None
        for field, value, limit in (("slug", slug, Label._meta.get_field("slug").max_length),
                                    ("name", name, Label._meta.get_field("name").max_length)):
            if len(value) > limit:
                raise ValueError(f"{where}: the {field} is longer than {limit} characters")
        rows.append((slug, name, description))
    with transaction.atomic():
        for slug, name, description in rows:
            label, created = Label.objects.get_or_create(slug=slug, defaults={"name": name, "description": description or ""})
            if created:
                result.created += 1
                continue
            changed = label.name != name or (description is not None and label.description != description)
            if changed:
                label.name = name
                if description is not None:
                    label.description = description
                label.save(update_fields=["name", "description"])
                result.updated += 1
            else:
                result.unchanged += 1
    return result
