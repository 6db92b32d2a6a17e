"""Bench-only URLconf: the whole marketplace plus `/bench/bare`, a view doing nothing, so the
cost of Django itself (middleware, URL resolution, gunicorn) can be measured beside a real
endpoint served the same way (bench/resolve_head.py). Never used by the application."""

from django.http import HttpResponse
from django.urls import path

from config.urls import urlpatterns as marketplace_urlpatterns


def bare(request):
    return HttpResponse("ok")


# first: the public pages' `<vendor>/<model>` catch-alls would otherwise take `bench/bare`
urlpatterns = [path("bench/bare", bare, name="bench-bare"), *marketplace_urlpatterns]
