"""Pages for learning with a photo: names or "Something?", words we learned (with and without
JavaScript), favourites in the library, and the speech settings the pages read aloud with."""

from __future__ import annotations

from app.db import User
from tests.app.test_learn import finished_photo
from tests.conftest import csrf_token


def test_favourites(app, client, auth):
    """The favourite flag shows on the photo page and in the library, by API and by form."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    url = f"/api/v1/photos/{photo_id}/favourite"
    assert client.put(url, json={"favourite": True},
                      headers=auth.api_headers()).get_json() == {"favourite": True}
    assert client.put(url, json={"favourite": "yes"}, headers=auth.api_headers()).status_code == 400
    photo_json = f"/api/v1/photos/{photo_id}"
    assert client.get(photo_json, headers=auth.api_headers()).get_json()["favourite"] is True
    assert 'data-favourite="true"' in client.get(f"/photos/{photo_id}").get_data(as_text=True)
    assert "is-favourite" in client.get("/library").get_data(as_text=True)
    response = client.post(f"/photos/{photo_id}/favourite", data={
        "csrf_token": csrf_token(client), "favourite": "0"})
    assert response.status_code == 302
    assert 'data-favourite="false"' in client.get(f"/photos/{photo_id}").get_data(as_text=True)
    listed = client.get("/api/v1/photos", headers=auth.api_headers()).get_json()["photos"]
    assert [p["favourite"] for p in listed if p["id"] == photo_id] == [False]


def test_speech_settings_are_kept_per_user(app, client, auth):
    """Voice, rate and sounds are saved per account and given to the pages."""
    auth.register()
    assert client.get("/settings").status_code == 200
    html = client.get("/").get_data(as_text=True)
    assert '<meta name="speech-rate" content="0.9">' in html
    response = client.post("/settings", data={
        "csrf_token": csrf_token(client, "/settings"), "voice": "Samantha", "rate": "1.2"})
    assert response.status_code == 302
    with app.app_context():
        user = User.by_email("parent@example.com")
        assert (user.speech_voice, user.speech_rate, user.sound_effects) == ("Samantha", 1.2, False)
    html = client.get("/").get_data(as_text=True)
    assert '<meta name="speech-voice" content="Samantha">' in html
    assert '<meta name="speech-rate" content="1.2">' in html
    bad = client.post("/settings", data={
        "csrf_token": csrf_token(client, "/settings"), "rate": "9", "sounds": "y"})
    assert bad.status_code == 400


def test_unnamed_objects_are_never_named_with_confidence(app, client, auth):
    """'something?' and 'object N' are shown as Something?, named things by name."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth, labels=("dog", "something?", "object 3"))
    html = client.get(f"/photos/{photo_id}").get_data(as_text=True)
    assert html.count('data-named="false"') == 2 and html.count('data-named="true"') == 1
    assert "Something?" in html and "Object 3" not in html


def test_words_form_without_javascript(app, client, auth):
    """The words form works without JavaScript."""
    auth.register()
    photo_id, _ = finished_photo(app, client, auth)
    page = client.post(f"/photos/{photo_id}/words", data={
        "csrf_token": csrf_token(client), "word": "ball"})
    assert page.status_code == 302 and page.location.endswith(f"/photos/{photo_id}#words")
    html = client.get(f"/photos/{photo_id}").get_data(as_text=True)
    assert "ball" in html
