"""Test factories (Sentry's habit): sensible defaults, missing parents created,
so a test states only what it is about."""

from __future__ import annotations

import io
import itertools
import random

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from collector.models import Label, Photo, PhotoStatus, Volunteer

_seq = itertools.count(1)


def make_label(slug: str | None = None, **kwargs) -> Label:
    slug = slug or f"label-{next(_seq)}"
    return Label.objects.get_or_create(slug=slug, defaults={"name": slug.capitalize(), **kwargs})[0]


def make_volunteer(display_name: str | None = None, *, password: str | None = None, email: str = "",
                   consent_public_credit: bool = True) -> Volunteer:
    from collector.services import volunteer_register

    volunteer, _ = volunteer_register(
        display_name=display_name or f"vol{next(_seq)}",
        password=password,
        email=email,
        consent_training=True,
        consent_public_credit=consent_public_credit,
    )
    return volunteer


def make_reviewer(username: str | None = None):
    user = get_user_model().objects.create_user(username=username or f"reviewer{next(_seq)}", password="review-pass-1",
                                                is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="review_photo"))
    return get_user_model().objects.get(pk=user.pk)  # fresh: permission cache


def client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def image_bytes(*, size=(640, 480), color=None, fmt="JPEG", seed: int | None = None, mode="RGB", **save_kwargs) -> bytes:
    """A synthetic photo: an 8x8 grid of random colour blocks on a base colour.

    Blocks fill the frame, so difference hashes of two seeds differ (flat
    images would all hash alike and be flagged as near-duplicates).
    """
    from PIL import ImageDraw

    rng = random.Random(seed if seed is not None else next(_seq))
    base = color or tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(image)
    bw, bh = size[0] / 8, size[1] / 8
    for bx in range(8):
        for by in range(8):
            if rng.random() < 0.25:
                continue  # let the base colour show through
            c = tuple(rng.randrange(256) for _ in range(3))
            draw.rectangle([int(bx * bw), int(by * bh), int((bx + 1) * bw) - 1, int((by + 1) * bh) - 1], fill=c)
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **save_kwargs)
    return out.getvalue()


def upload(client, data: bytes | None = None, *, label: str, filename="photo.jpg", key: str | None = None, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    payload = {"image": SimpleUploadedFile(filename, data if data is not None else image_bytes()), "label": label}
    payload.update({k: v for k, v in fields.items() if v is not None})
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/v1/photos/", payload, format="multipart", **headers)


def make_photo(*, volunteer=None, label=None, status=PhotoStatus.PENDING, image: bytes | None = None, reviewer=None) -> Photo:
    """A photo through the real upload service, then reviewed as asked."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from collector import services

    volunteer = volunteer or make_volunteer()
    label = label or make_label()
    photo = services.photo_create(
        user=volunteer.user, image_file=SimpleUploadedFile("p.jpg", image or image_bytes()), label_slug=label.slug
    ).photo
    if status in (PhotoStatus.APPROVED, PhotoStatus.REJECTED):
        reviewer = reviewer or make_reviewer()
        services.photo_review(photo_id=photo.pk, reviewer=reviewer,
                              decision="approve" if status == PhotoStatus.APPROVED else "reject",
                              reason="" if status == PhotoStatus.APPROVED else "blurry")
        photo.refresh_from_db()
    return photo
