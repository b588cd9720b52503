"""Display names become unique by their confusable-insensitive key (collector.lib.names).

Step 1 of 2: add the key column, fill it for every volunteer, and settle names
that the new rule finds alike. The oldest volunteer (created first, then lowest
id) keeps the name; each younger one gets its name with "-<user id>" (then
"-<user id>-2"...) until the key is free, and each rename is printed. Only the
shown display name changes: the username they sign in with stays.
Step 2 (0007) makes the key unique and drops the old case-insensitive
constraint it replaces.
"""

from django.db import migrations, models

from collector.lib.names import display_name_key

NAME_MAX = 40


def _free_name(name: str, user_id: int, taken: set[str]) -> tuple[str, str]:
    n = 1
    while True:
        suffix = f"-{user_id}" if n == 1 else f"-{user_id}-{n}"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
        key = display_name_key(candidate)
        if key not in taken:
            return candidate, key
        n += 1


def fill_keys(apps, schema_editor):
    Volunteer = apps.get_model("collector", "Volunteer")
    volunteers = list(Volunteer.objects.order_by("created_at", "id"))
    # Every key any volunteer has now: a rename must not land on a younger volunteer's name either.
    taken = {display_name_key(v.display_name) for v in volunteers}
    holder: dict[str, str] = {}  # key -> the name that keeps it
    for volunteer in volunteers:
        key = display_name_key(volunteer.display_name)
        if key in holder:
            old = volunteer.display_name
            volunteer.display_name, new_key = _free_name(old, volunteer.user_id, taken)
            taken.add(new_key)
            print(f"\n  Volunteer display name {old!r} (user {volunteer.user_id}) looks like the older "
                  f"{holder[key]!r}: renamed {volunteer.display_name!r}.", end="")
            key = new_key
        holder[key] = volunteer.display_name
        volunteer.display_name_key = key
        volunteer.save(update_fields=["display_name", "display_name_key"])


class Migration(migrations.Migration):

    dependencies = [
        ("collector", "0005_storage_sweep"),
    ]

    operations = [
        migrations.AddField(
            model_name="volunteer",
            name="display_name_key",
            field=models.CharField(editable=False, max_length=720, null=True),
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop, elidable=False),
    ]
