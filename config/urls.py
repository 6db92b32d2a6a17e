"""URL map: admin, REST API, Hugging Face compatible endpoints, public pages (last: they catch
`/<vendor>` and `/<vendor>/<model>`)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from marketplace import views
from marketplace.api import huggingface as hf

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("marketplace.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/models/<str:vendor>/<str:model>", hf.ModelInfoView.as_view(), name="hf-model-info"),
    path("api/models/<str:vendor>/<str:model>/revision/<str:revision>", hf.ModelInfoView.as_view(), name="hf-model-revision"),
    path("api/models/<str:vendor>/<str:model>/tree/<str:revision>", hf.ModelTreeView.as_view(), name="hf-model-tree"),
    path("api/models/<str:vendor>/<str:model>/tree/<str:revision>/<path:path>", hf.ModelTreeView.as_view()),
    path("", views.home, name="home"),
    path("<str:vendor>/<str:model>/resolve/<str:revision>/<path:path>", hf.ResolveView.as_view(), name="hf-resolve"),
    path("<str:vendor>/<str:model>", views.model_page, name="model-page"),
    path("<str:vendor>", views.vendor_page, name="vendor-page"),
]
