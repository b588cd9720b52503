"""The sign-up form (sign-in is Django's own AuthenticationForm)."""

from __future__ import annotations

import re

from django import forms

from collector.password_validation import password_problems


class SignUpForm(forms.Form):
    display_name = forms.RegexField(
        regex=re.compile(r"^[\w.@+-]{2,40}$"),
        max_length=40,
        label="Display name",
        help_text="2 to 40 letters, digits or . @ + - _ (no spaces). You sign in with it.",
        error_messages={"invalid": "Use 2 to 40 letters, digits or . @ + - _ (no spaces)."},
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    # strip=False as in Django's own password fields: kept as typed, so it signs in as typed (the sign-in
    # form does not strip either), and a password of spaces is refused by the validators, not made "".
    password = forms.CharField(
        label="Password", min_length=8, max_length=128, strip=False,
        help_text="At least 8 characters, not only digits or spaces, and not like your display name or email.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    email = forms.EmailField(
        label="Email (optional)", required=False, max_length=254,
        help_text="Only for the newsletter and to reach you about your photos.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    consent_training = forms.BooleanField(
        label="My photos may be used to train the image recognition models.", required=True,
        error_messages={"required": "Photos are collected to train models: please agree to take part."},
    )
    consent_public_credit = forms.BooleanField(
        label="Show my display name on leaderboards and next to my photos.", required=False,
        help_text="Without it you appear as \u201cVolunteer #number\u201d and your photos are not shown publicly.",
    )

    def clean_password(self):
        # The same rules as the API (collector.password_validation), with the name and email as typed:
        # checked here, not only in volunteer_register, so one answer shows every field at fault.
        password = self.cleaned_data["password"]
        problems = password_problems(password, display_name=self.data.get("display_name", ""),
                                     email=self.data.get("email", ""))
        if problems:
            raise forms.ValidationError(problems)
        return password
