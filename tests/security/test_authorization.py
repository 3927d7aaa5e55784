"""Every route that takes an id answers 404 for another user's photo, job, file or account."""

import io

from app.db import User
from app.extensions import db
from tests.conftest import AuthActions, csrf_token, photo_bytes

#: Values for URL arguments that are not ids.
OTHER_ARGS = {"name": ["original.jpg", "overlay.jpg", "overlay.png", "objects.json", "thumb.jpg"],
              "word_id": [1]}


def owned_ids(app, make_client):
    """A victim with a photo and job; returns the victim's ids."""
    victim, actions = make_client("victim@example.com")
    response = victim.post("/api/v1/photos", headers=actions.api_headers(), data={
        "mode": "everything", "image": (io.BytesIO(photo_bytes()), "dog.jpg")})
    assert response.status_code == 202
    ids = response.get_json()
    with app.app_context():
        user_id = User.by_email("victim@example.com").id
    return {"photo_id": ids["photo_id"], "job_id": ids["job_id"], "user_id": user_id}


def urls_with_ids(app, ids):
    """(method, url) for every rule and method of the app whose URL takes an id."""
    for rule in app.url_map.iter_rules():
        id_args = [a for a in rule.arguments if a in ids]
        if not id_args:
            continue
        choices = [{}]
        for arg in rule.arguments - set(id_args):
            choices = [c | {arg: v} for c in choices for v in OTHER_ARGS[arg]]
        for extra in choices:
            with app.test_request_context():
                from flask import url_for

                url = url_for(rule.endpoint, **{a: ids[a] for a in id_args}, **extra)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, url


def test_every_id_route_is_404_for_another_user(app, make_client):
    ids = owned_ids(app, make_client)
    intruder, actions = make_client("intruder@example.com")
    token = csrf_token(intruder, "/")
    checked = 0
    for method, url in urls_with_ids(app, ids):
        response = intruder.open(url, method=method, headers={"X-CSRFToken": token},
                                 data={"csrf_token": token} if method == "POST" else None)
        assert response.status_code == 404, (method, url, response.status_code)
        checked += 1
    assert checked >= 10  # photo page, files, delete, API photo/job, admin actions
    with app.app_context():
        victim = db.session.get(User, ids["user_id"])
        assert victim is not None and len(victim.photos) == 1 and not victim.is_admin


def test_no_request_makes_anyone_an_admin(app, client, auth):
    token = csrf_token(client, "/register")
    client.post("/register", data={"email": "sneaky@example.com", "password": "purple monkey "
                                   "dishwasher", "confirm": "purple monkey dishwasher",
                                   "is_admin": "1", "admin": "true", "csrf_token": token})
    me = AuthActions(client)
    with app.app_context():
        uid = User.by_email("sneaky@example.com").id
    token = csrf_token(client, "/")
    for path in (f"/admin/users/{uid}/promote", "/admin", "/api/v1/users/me"):
        client.post(path, data={"csrf_token": token, "is_admin": "1"},
                    headers={"X-CSRFToken": token})
    with app.app_context():
        assert not db.session.get(User, uid).is_admin
    assert me.client.get("/admin").status_code == 404
