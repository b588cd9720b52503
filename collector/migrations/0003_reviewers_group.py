"""The "Reviewers" group: staff in it may approve, reject and relabel photos in the admin.

Permissions are normally created after all migrations (post_migrate), so on a
fresh database they are created here first. `manage.py reviewers_group` puts
the group back the same way if someone edits it in the admin.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_NAME = "Reviewers"
# (app_label, codename): frozen here on purpose; collector.services.REVIEWER_PERMISSIONS is the live copy.
PERMISSIONS = [
    ("collector", "review_photo"),
    ("collector", "view_photo"),
    ("collector", "change_photo"),
    ("collector", "view_photoreview"),
    ("collector", "view_label"),
    ("collector", "view_volunteer"),
]


def create_group(apps, schema_editor):
    app_config = apps.get_app_config("collector")
    app_config.models_module = True  # create_permissions skips app configs without one
    create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(schema_editor.connection.alias).get_or_create(name=GROUP_NAME)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(
            Permission.objects.using(schema_editor.connection.alias).get(
                content_type__app_label=app_label, codename=codename
            )
        )


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("collector", "0002_review_queue_index"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
