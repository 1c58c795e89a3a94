"""The environment that points the real gcloud CLI at the local emulator (gcp-api.md §3.1).

Shared by the gcloud conformance test, the end-to-end test and the controller benchmark.
"""
import os


def gcloud_env(port, project, region, config_dir):
    """os.environ without CLOUDSDK_* and proxy variables, plus the emulator settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLOUDSDK_") and k.lower() not in
           ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    endpoint = f"http://127.0.0.1:{port}/"
    env.update({
        "CLOUDSDK_CONFIG": config_dir,
        "CLOUDSDK_CORE_PROJECT": project,
        "CLOUDSDK_RUN_REGION": region,
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDBUILD": endpoint,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDRESOURCEMANAGER": endpoint,
        # gcloud turns the run override into "<region>-127.0.0.1:PORT"; with the emulator as its
        # HTTP proxy that host never has to resolve.
        "CLOUDSDK_PROXY_TYPE": "http",
        "CLOUDSDK_PROXY_ADDRESS": "127.0.0.1",
        "CLOUDSDK_PROXY_PORT": str(port),
        "CLOUDSDK_CORE_SHOULD_PROMPT_TO_ENABLE_API": "false",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "true",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "true",
    })
    return env
