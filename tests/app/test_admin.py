"""Admin panel rules and the create-admin command."""

import io

from app.db import Photo, User
from app.extensions import db
from tests.conftest import PASSWORD, AuthActions, csrf_token, photo_bytes


def make_admin(app, runner, email="admin@example.com"):
    result = runner.invoke(args=["users", "create-admin", email],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    return email


def admin_client(app, runner):
    email = make_admin(app, runner)
    client = app.test_client()
    assert AuthActions(client).login(email).status_code == 302
    return client


def post(client, path):
    return client.post(path, data={"csrf_token": csrf_token(client, "/admin")})


def user_id(app, email):
    with app.app_context():
        return User.by_email(email).id


def test_plain_users_never_see_the_panel(app, client, auth):
    auth.register()
    assert client.get("/admin").status_code == 404
    victim = user_id(app, "parent@example.com")
    token = csrf_token(client, "/")
    for action in ("promote", "demote", "delete"):
        response = client.post(f"/admin/users/{victim}/{action}", data={"csrf_token": token})
        assert response.status_code == 404
    with app.app_context():
        assert not User.by_email("parent@example.com").is_admin


def test_admin_lists_promotes_demotes_and_deletes(app, runner, make_client):
    admin = admin_client(app, runner)
    user, _ = make_client("kid-parent@example.com")
    page = admin.get("/admin").get_data(as_text=True).replace("<wbr>", "")
    assert "kid-parent@example.com" in page and "admin@example.com" in page
    uid = user_id(app, "kid-parent@example.com")
    post(admin, f"/admin/users/{uid}/promote")
    with app.app_context():
        assert db.session.get(User, uid).is_admin
    assert user.get("/admin").status_code == 200
    post(admin, f"/admin/users/{uid}/demote")
    with app.app_context():
        assert not db.session.get(User, uid).is_admin
    # give the user a photo, then delete the user: photo rows and files go too
    user.post("/api/v1/photos", data={"mode": "everything", "image": (
        io.BytesIO(photo_bytes()), "dog.jpg")},
        headers={"X-CSRFToken": csrf_token(user, "/")})
    with app.app_context():
        photo = db.session.query(Photo).filter_by(user_id=uid).one()
        files = app.extensions["photo_storage"].local_path(photo.storage_prefix)
    assert files.is_dir()
    post(admin, f"/admin/users/{uid}/delete")
    with app.app_context():
        assert db.session.get(User, uid) is None
        assert db.session.query(Photo).filter_by(user_id=uid).count() == 0
    assert not files.exists()


def test_last_admin_cannot_demote_or_delete_themselves(app, runner):
    admin = admin_client(app, runner)
    aid = user_id(app, "admin@example.com")
    post(admin, f"/admin/users/{aid}/demote")
    assert "last admin" in admin.get("/admin").get_data(as_text=True)
    post(admin, f"/admin/users/{aid}/delete")
    assert "last admin" in admin.get("/admin").get_data(as_text=True)
    with app.app_context():
        me = db.session.get(User, aid)
        assert me is not None and me.is_admin


def test_create_admin_promotes_an_existing_account(app, runner, make_client):
    make_client("teacher@example.com")
    make_admin(app, runner, "teacher@example.com")
    with app.app_context():
        assert User.by_email("teacher@example.com").is_admin
