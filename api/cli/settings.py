"""The command line's settings: which deployment to talk to, and what an embedded one runs."""

from pydantic import Field, SecretStr, field_validator

from pipeline.settings import DataSettings, http_url


class CliSettings(DataSettings):
    """`api_url` + `api_key`: a deployment; neither: an embedded one in `home` (inference on `inference_url`, else a
    server this command starts on `checkpoint`, else on the random-weight `small` development checkpoint)."""

    api_url: str | None = Field(None, description="a wholedoc deployment's base URL, http(s)://HOST:PORT")
    api_key: SecretStr | None = Field(None, description="an API key of that deployment, wd_…")
    inference_url: str | None = Field(None, description="an OpenAI-compatible base URL ending in /v1, http(s)://…")
    checkpoint: str | None = Field(None, description="a folder with DeepSeek-V4 weights (the official layout)")

    @field_validator("api_url", "inference_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return http_url(value)
