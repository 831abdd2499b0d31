"""How API-key authentication and duration fields appear in the OpenAPI schema (drf-spectacular extensions,
registered by importing this module from `ApiKeysConfig.ready`)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_requirement(self, auto_schema):
        # Either header works: two alternative requirements, not both at once.
        return [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer jwl_...`"},
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: jwl_...`"},
        ]


class DurationSpecFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "apikeys.durations.DurationSpecField"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "pattern": r"^\d{1,7}[smhd]?$",
            "example": "7d",
            "description": "A duration: 90s, 30m, 12h, 7d, or a number of seconds.",
        }
