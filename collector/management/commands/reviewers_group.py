"""manage.py reviewers_group [--add USER ...] [--remove USER ...]

Creates the "Reviewers" group (a data migration already does on migrate) or
puts back permissions someone removed, and adds or removes members. Members
are made staff so they can sign in to the admin.
"""

from django.core.management.base import BaseCommand, CommandError

from collector import services


class Command(BaseCommand):
    help = "Create or repair the Reviewers group and add or remove reviewers."

    def add_arguments(self, parser):
        parser.add_argument("--add", nargs="+", default=[], metavar="USERNAME", help="Make these users reviewers")
        parser.add_argument("--remove", nargs="+", default=[], metavar="USERNAME", help="Take the group away")

    def handle(self, *args, add, remove, **options):
        try:
            group = services.reviewers_group_sync(add_usernames=add, remove_usernames=remove)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        members = sorted(group.user_set.values_list("username", flat=True))
        self.stdout.write(
            f'Group "{group.name}": {", ".join(sorted(p.codename for p in group.permissions.all()))}. '
            f"Members ({len(members)}): {', '.join(members) or 'none'}."
        )
