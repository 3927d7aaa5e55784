"""Property-based tests (hypothesis, bounded): the upload decoder and the API parameters never
crash, whatever bytes or strings arrive."""

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.imaging import ImageRejected, normalise_upload
from models.errors import BadPromptError
from models.prompts import parse_prompt

BUDGET = settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])


def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (30, 140, 200)).save(buf, "PNG")
    return buf.getvalue()


def small_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 10)).save(buf, "JPEG")
    return buf.getvalue()


SEEDS = [small_png(), small_jpeg()]


@st.composite
def mutated_images(draw):
    """A real small PNG/JPEG with bytes flipped, cut, or inserted."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[pos:]
            if not data:
                break
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@BUDGET
@given(st.one_of(st.binary(max_size=2048), mutated_images()))
def test_decoder_accepts_or_refuses_cleanly(data):
    try:
        result = normalise_upload(data)
    except ImageRejected as exc:
        assert str(exc)
    else:
        assert result.image.mode == "RGB" and min(result.size) >= 32
        assert Image.open(io.BytesIO(result.jpeg)).size == result.size


@BUDGET
@given(st.text(max_size=600))
def test_prompt_parser_returns_phrases_or_a_reason(text):
    try:
        phrases = parse_prompt(text)
    except BadPromptError as exc:
        assert str(exc)
    else:
        assert 1 <= len(phrases) <= 20
        assert all(p and p == p.strip() and "," not in p for p in phrases)


@BUDGET
@given(mode=st.one_of(st.sampled_from(["everything", "grounded"]), st.text(max_size=20)),
       prompt=st.one_of(st.none(), st.text(max_size=300)),
       image=st.one_of(st.just(small_jpeg()), st.binary(max_size=200)))
def test_api_answers_202_or_a_json_error(client, auth, mode, prompt, image):
    if client.get("/api/v1/photos").status_code == 401:
        auth.register()
    form = {"mode": mode, "image": (io.BytesIO(image), "x.jpg")}
    if prompt is not None:
        form["prompt"] = prompt
    response = client.post("/api/v1/photos", data=form, headers=auth.api_headers())
    assert response.status_code in (202, 400, 415, 429), response.status_code
    assert response.is_json
    if response.status_code != 202:
        assert response.get_json()["error"]
