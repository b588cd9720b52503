# The reasons now include both the verify grant and the stumped bonus.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('challenges', '0006_verify_points'),
    ]

    operations = [
        migrations.AlterField(
            model_name='pointentry',
            name='reason',
            field=models.CharField(choices=[('approved', 'Photo approved'), ('challenge_bonus', 'Challenge bonus'), ('featured', 'Featured by staff'), ('vote', 'Vote received'), ('novelty', 'Novelty bonus'), ('verify', 'Verdict matched the final decision'), ('stumped', 'Stumped the model')], max_length=20),
        ),
    ]
