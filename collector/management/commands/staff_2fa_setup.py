"""manage.py staff_2fa_setup USERNAME [--reset | --recovery-codes]

Enrols a staff account's second factor (config.two_factor): prints the QR
code to scan with an authenticator app (and its secret, for typing in), and
ten single-use recovery codes. Run it for every staff account before setting
STAFF_REQUIRE_2FA=true; a superuser can also add devices in the admin
(OTP_TOTP > TOTP devices, with its QR code). What it prints is shown once:
hand it to the account's owner and nowhere else.

--reset replaces an existing device (a lost phone): the old app and codes stop
working. --recovery-codes prints a new set of recovery codes and keeps the app.
"""

from __future__ import annotations

import qrcode
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from config import two_factor
from config.domain_errors import DomainError


class Command(BaseCommand):
    help = "Give a staff account its authenticator app (TOTP) and recovery codes, or renew its recovery codes."

    def add_arguments(self, parser):
        parser.add_argument("username")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--reset", action="store_true", help="Replace an existing device (the old one stops working)")
        group.add_argument("--recovery-codes", action="store_true", help="Only print a new set of recovery codes")

    def handle(self, *args, username, reset, recovery_codes, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No account is named {username!r}.")
        try:
            if recovery_codes:
                codes = two_factor.recovery_codes_renew(user=user)
            else:
                enrolment = two_factor.second_factor_enrol(user=user, reset=reset)
                codes = enrolment["recovery_codes"]
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if not recovery_codes:
            self.stdout.write(f"Scan this with an authenticator app for {username}:\n")
            code = qrcode.QRCode(border=2)
            code.add_data(enrolment["config_url"])
            code.print_ascii(out=self.stdout, invert=True)
            self.stdout.write(f"\nOr type in this secret (time-based, 6 digits, 30 s): {enrolment['secret']}\n")
            self.stdout.write(f"Link for apps that open one: {enrolment['config_url']}\n")
        self.stdout.write("\nRecovery codes (each works once, instead of a code from the app; keep them apart "
                          "from the phone):\n")
        for value in codes:
            self.stdout.write(f"  {value}\n")
