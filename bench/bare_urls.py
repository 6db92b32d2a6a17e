"""Bench-only URLconf: the whole marketplace plus two views doing no work, so the cost of the
framework can be measured beside a real endpoint served the same way (bench/resolve_head.py).
Never used by the application.

- `/bench/bare`: a plain Django view returning "ok" (Django, its middleware, gunicorn);
- `/bench/drf`: a DRF view with the resolve view's authentication (API token) and throttle,
  returning an empty 200 (the floor of any authorized API endpoint: token lookup included);
- `/bench/bare-post`: a plain Django view that reads a JSON body and answers JSON (the floor of
  any POST of a document: bench/fleet_inventory.py).
"""

import json

from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.throttles import DownloadThrottle
from config.urls import urlpatterns as marketplace_urlpatterns


def bare(request):
    return HttpResponse("ok")


@csrf_exempt
def bare_post(request):
    return JsonResponse({"received": len(json.loads(request.body)["inventory"]["models"])})


class AuthorizedNothing(APIView):
    throttle_classes = [DownloadThrottle]

    def get(self, request):
        return Response(status=200 if request.user.is_authenticated else 401)


# first: the public pages' `<vendor>/<model>` catch-alls would otherwise take these paths
urlpatterns = [
    path("bench/bare", bare, name="bench-bare"),
    path("bench/drf", AuthorizedNothing.as_view(), name="bench-drf"),
    path("bench/bare-post", bare_post, name="bench-bare-post"),
    *marketplace_urlpatterns,
]
