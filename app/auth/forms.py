"""Account forms (Flask-WTF, CSRF-protected): register and log in."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import (
    Email,
    EqualTo,
    InputRequired,
    Length,
    ValidationError,
)

#: NIST SP 800-63B asks for at least 8 characters and allows at least 64.
MIN_PASSWORD, MAX_PASSWORD = 8, 128


class RegisterForm(FlaskForm):
    """Sign-up: email, password, confirmation. There is deliberately no admin field."""

    email = StringField("Email", validators=[InputRequired(), Email(), Length(max=254)])
    password = PasswordField("Password", validators=[
        InputRequired(), Length(min=MIN_PASSWORD, max=MAX_PASSWORD,
                                message="Use between 8 and 128 characters.")])
    confirm = PasswordField("Repeat password", validators=[
        InputRequired(), EqualTo("password", message="The two passwords do not match.")])
    submit = SubmitField("Create account")

    def validate_password(self, field: PasswordField) -> None:
        """Refuse common and guessable passwords (NIST SP 800-63B 5.1.1.2)."""
        from app.security import password_problem

        problem = password_problem(field.data or "", self.email.data or "")
        if problem:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    """Log in with email and password; ``remember`` keeps the session across browser restarts."""

    email = StringField("Email", validators=[InputRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=MAX_PASSWORD)])
    remember = BooleanField("Remember me")
    submit = SubmitField("Log in")
