"""manage.py reviewers_group [--add USER ...] [--create] [--remove USER ...]

Creates the "Reviewers" group (a data migration already does on migrate) or
puts back permissions someone removed, and adds or removes members. Members
are made staff so they can sign in to the admin.

With --create, an --add name that has no account yet gets a new staff user.
Its password comes from the CROWDLENS_REVIEWER_PASSWORD environment variable
(for scripts; one new account per run then, so no two reviewers share it) or
is asked for twice at the terminal, and must pass the password validators.
Without either, nothing is created: a password is never made up.
"""

from __future__ import annotations

import getpass
import os
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from collector import services
from config.domain_errors import DomainError

PASSWORD_VARIABLE = "CROWDLENS_REVIEWER_PASSWORD"


class Command(BaseCommand):
    stealth_options = ("stdin",)  # call_command(..., stdin=...) in tests, as createsuperuser
    help = "Create or repair the Reviewers group and add or remove reviewers (--create makes new staff accounts)."

    def add_arguments(self, parser):
        parser.add_argument("--add", nargs="+", default=[], metavar="USERNAME", help="Make these users reviewers")
        parser.add_argument("--remove", nargs="+", default=[], metavar="USERNAME", help="Take the group away")
        parser.add_argument(
            "--create", action="store_true",
            help=f"Create the --add users that do not exist as staff accounts (password from {PASSWORD_VARIABLE} "
                 "or asked at the terminal)",
        )
        parser.add_argument("--email", default="", help="With --create: the new account's email address")

    def handle(self, *args, add, remove, create, email, **options):
        stdin = options.get("stdin") or sys.stdin
        try:
            with transaction.atomic():
                new = self._missing(add) if create else []
                passwords = self._passwords(new, stdin) if new else {}
                for name in new:
                    services.reviewer_account_create(username=name, password=passwords[name], email=email)
                    self.stdout.write(f"Created staff user {name}.")
                group = services.reviewers_group_sync(add_usernames=add, remove_usernames=remove)
        except DomainError as exc:
            message = exc.message
            if exc.code == "no_such_user" and set(exc.fields.get("usernames", [])) & set(add) and not create:
                message += (f". To create a new reviewer, add --create (the password comes from {PASSWORD_VARIABLE} "
                            "or is asked at the terminal).")
            raise CommandError(message) from None
        members = sorted(group.user_set.values_list("username", flat=True))
        self.stdout.write(
            f'Group "{group.name}": {", ".join(sorted(p.codename for p in group.permissions.all()))}. '
            f"Members ({len(members)}): {', '.join(members) or 'none'}."
        )

    @staticmethod
    def _missing(names: list[str]) -> list[str]:
        from django.contrib.auth import get_user_model

        existing = set(get_user_model().objects.filter(username__in=names).values_list("username", flat=True))
        return [name for name in dict.fromkeys(names) if name not in existing]

    def _passwords(self, names: list[str], stdin) -> dict[str, str]:
        from_env = os.environ.get(PASSWORD_VARIABLE)
        if from_env:
            if len(names) > 1:
                raise CommandError(f"{PASSWORD_VARIABLE} is one password: create one new reviewer per run "
                                   f"(new here: {', '.join(names)}).")
            return {names[0]: from_env}
        if stdin is None or not stdin.isatty():
            raise CommandError(
                f"No password for the new user{'s' if len(names) > 1 else ''} {', '.join(names)}: set "
                f"{PASSWORD_VARIABLE} or run the command in a terminal to be asked. Nothing was changed."
            )
        passwords = {}
        for name in names:
            first = getpass.getpass(f"Password for {name}: ")
            if first != getpass.getpass(f"Password for {name} (again): "):
                raise CommandError(f"The two passwords for {name} differ. Nothing was changed.")
            if not first:
                raise CommandError(f"No password given for {name}. Nothing was changed.")
            passwords[name] = first
        return passwords

