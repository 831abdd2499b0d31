"""Staff manage API keys here. Every change goes through the services; a new key is shown once, on the page that
answers the creating (or rotating) POST, and is never stored in the session, a message or a log entry."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from jewelia.core.actors import Actor
from jewelia.core.exceptions import Conflict, ValidationFailed

from .models import ApiKey, ApiKeyUsage, KeyStatus, validate_networks
from .scopes import scope_choices
from .selectors import api_key_status_q, api_key_with_requests_today
from .services import (
    PrivilegeEscalation,
    api_key_check_expiry,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
)

GRACE_CHOICES = [
    (0, "None: the old key stops at once"),
    (3600, "1 hour"),
    (86400, "1 day"),
    (3 * 86400, "3 days"),
    (7 * 86400, "7 days"),
]

# Shown read-only on every key's page: who made and revoked it, rotation and use.
HISTORY_FIELDS = [
    "created_at",
    "created_by_label",
    "revoked_at",
    "revoked_by_label",
    "replaces",
    "replacement",
    "grace_ends_at",
    "last_used_at",
    "last_used_ip",
    "expiry_notified_at",
]


class NetworksField(forms.Field):
    """IP networks, one per line (a list in the model)."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})
    default_validators = [validate_networks]

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


class KeyFields(forms.Form):
    """The settings staff choose for a key, shared by the add form and the change form."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    scopes = forms.MultipleChoiceField(choices=scope_choices, widget=forms.CheckboxSelectMultiple)
    expires_at = forms.SplitDateTimeField(
        widget=AdminSplitDateTime, required=False, help_text="Empty: the maximum lifetime, if one is configured."
    )
    allowed_networks = NetworksField(
        required=False, help_text="One network per line (e.g. 203.0.113.0/24). Empty: any address."
    )
    rate_limit_per_minute = forms.IntegerField(
        min_value=1, required=False, help_text="Requests per minute. Empty: the default."
    )

    def clean(self):
        cleaned = super().clean()
        instance = getattr(self, "instance", None)
        creating = instance is None or instance.pk is None
        # On creation an empty expiry means "the default"; on a change it means "never", which may be refused.
        if (cleaned.get("expires_at") and creating) or (not creating and "expires_at" in self.changed_data):
            now = timezone.now()
            try:
                api_key_check_expiry(
                    expires_at=cleaned.get("expires_at"),
                    created_at=now if creating else instance.created_at,
                    now=now,
                )
            except ValidationFailed as exc:
                self.add_error("expires_at", exc.details["fields"]["expires_at"])
        return cleaned


class ApiKeyAddForm(KeyFields):
    pass


class ApiKeyChangeForm(KeyFields, forms.ModelForm):
    rate_limit_per_minute = forms.IntegerField(min_value=1, help_text="Requests per minute.")

    class Meta:
        model = ApiKey
        fields = ["name", "description", "scopes", "expires_at", "allowed_networks", "rate_limit_per_minute"]


class ApiKeyUsageInline(admin.TabularInline):
    model = ApiKeyUsage
    fields = ["date", "request_count", "error_count"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = "Usage in the last 30 days (updated every flush interval)"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(date__gt=timezone.now().date() - timedelta(days=30))


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return KeyStatus.choices

    def queryset(self, request, queryset):
        if self.value() in KeyStatus.values:
            return queryset.filter(api_key_status_q(status=KeyStatus(self.value()), now=timezone.now()))
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyChangeForm
    list_display = ["identifier", "name", "scope_list", "status_label", "expires_at", "last_used_at", "requests_today"]
    list_filter = [StatusFilter]
    search_fields = ["name", "public_id", "description"]
    actions = ["revoke_keys", "rotate_keys"]
    inlines = [ApiKeyUsageInline]
    readonly_fields = ["identifier", "status_label", *HISTORY_FIELDS]
    fieldsets = [
        (None, {"fields": ["identifier", "status_label", "name", "description", "scopes"]}),
        ("Limits", {"fields": ["expires_at", "allowed_networks", "rate_limit_per_minute"]}),
        ("History", {"fields": HISTORY_FIELDS}),
    ]

    def get_queryset(self, request):
        return api_key_with_requests_today(super().get_queryset(request).select_related("replaced_by"))

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and (obj.revoked_at is not None or obj.grace_ends_at is not None):
            return [*self.readonly_fields, *ApiKeyChangeForm.Meta.fields]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False  # keys are revoked, never deleted: the row is the audit trail

    @admin.display(description="scopes")
    def scope_list(self, key: ApiKey) -> str:
        return ", ".join(key.scopes)

    @admin.display(description="status")
    def status_label(self, key: ApiKey) -> str:
        return key.status.label

    @admin.display(description="requests today", ordering="requests_today")
    def requests_today(self, key: ApiKey) -> int:
        return key.requests_today

    @admin.display(description="replaced by")
    def replacement(self, key: ApiKey):
        return getattr(key, "replaced_by", None) or "-"

    # -- creation: the key is shown on the page that answers the POST, and nowhere else --------------------------

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiKeyAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                key, raw = api_key_create(
                    actor=Actor.for_user(request.user),
                    name=data["name"],
                    description=data["description"],
                    scopes=data["scopes"],
                    expires_at=data["expires_at"],
                    allowed_networks=data["allowed_networks"],
                    rate_limit_per_minute=data["rate_limit_per_minute"],
                )
            except ValidationFailed as exc:
                for field, errors in exc.details.get("fields", {}).items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                self.log_addition(request, key, [{"added": {}}])
                return self._show_keys_once(request, [(key, raw)], title="API key created")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Add API key",
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/apikeys/apikey/add_form.html", context)

    def _show_keys_once(self, request, keys: list[tuple[ApiKey, str]], *, title: str):
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title, "keys": keys}
        response = TemplateResponse(request, "admin/apikeys/apikey/keys_once.html", context)
        add_never_cache_headers(response)
        return response

    def save_model(self, request, obj, form, change):
        """Changes go through `api_key_update` (validation, cache refresh); creation has its own view."""
        if not change:
            raise PermissionDenied
        data = {field: form.cleaned_data[field] for field in form.changed_data if field in ApiKeyChangeForm.Meta.fields}
        api_key_update(key=obj, actor=Actor.for_user(request.user), **data)

    # -- actions ---------------------------------------------------------------------------------------------------

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        revoked = 0
        for key in queryset:
            if key.revoked_at is None:
                api_key_revoke(key=key, actor=Actor.for_user(request.user))
                revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)

    @admin.action(description="Rotate selected API keys", permissions=["add"])
    def rotate_keys(self, request, queryset):
        keys = list(queryset)
        grace = forms.TypedChoiceField(choices=GRACE_CHOICES, coerce=int)
        if "grace_seconds" not in request.POST:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Rotate API keys",
                "keys": keys,
                "grace_choices": GRACE_CHOICES,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/apikeys/apikey/rotate_confirm.html", context)
        try:
            seconds = grace.clean(request.POST["grace_seconds"])
        except forms.ValidationError:
            self.message_user(request, "Choose a grace period.", messages.ERROR)
            return None
        rotated, refused = [], []
        for key in keys:
            try:
                rotated.append(
                    api_key_rotate(key=key, actor=Actor.for_user(request.user), grace_period=timedelta(seconds=seconds))
                )
            except (Conflict, PrivilegeEscalation) as exc:
                refused.append(f"{key}: {exc.message}")
        for line in refused:
            self.message_user(request, line, messages.WARNING)
        if not rotated:
            return None
        for new, _ in rotated:
            self.log_addition(request, new, [{"added": {}}])
        return self._show_keys_once(request, rotated, title="API keys rotated")
