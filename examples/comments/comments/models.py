from django.db import models


class Comment(models.Model):
    thread = models.CharField(max_length=100, db_index=True)
    author = models.CharField(max_length=100)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
