"""The emulator's Cloud Run v2 surface through the SDK's Google-generated apitools client.

Run by gcloud_conformance_test.py with the SDK's bundled Python and
PYTHONPATH=<sdk>/lib:<sdk>/lib/third_party, in the same environment as gcloud (endpoint override,
proxy, credentials disabled). The generated client decodes every response into its message
classes, so a wrong field type, an unknown enum value or a missing field shows up here as an
exception or a failed assertion.

Usage: gcloud_v2_client_check.py PROJECT REGION SERVICE REVISION_A REVISION_B SERVICE...
  SERVICE          the service to read and patch; it serves LATEST = REVISION_B, and REVISION_A
                   is its other revision.
  SERVICE...       every service the region holds (for the paged list).

Prints one "ok: ..." line per check; exits 1 with a "FAIL: ..." line on the first failure.
"""

import sys

from apitools.base.protorpclite import messages as protorpc
from apitools.base.py import encoding
from apitools.base.py import exceptions as apitools_exceptions
from googlecloudsdk.api_lib.util import apis


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def check(condition, what, detail=""):
    if not condition:
        fail(f"{what}{': ' + str(detail) if detail else ''}")
    print(f"ok: v2 client: {what}", flush=True)


def short(name):
    return name.rsplit("/", 1)[-1]


def unknown_fields(message, path):
    """Paths of JSON members the generated message classes do not define, recursively."""
    out = [f"{path}.{name}" for name in message.all_unrecognized_fields()]
    for field in message.all_fields():
        if not isinstance(field, protorpc.MessageField):
            continue
        value = getattr(message, field.name)
        items = value if field.repeated else ([value] if value is not None else [])
        for i, item in enumerate(items):
            if isinstance(item, protorpc.Message):
                suffix = f"[{i}]" if field.repeated else ""
                out.extend(unknown_fields(item, f"{path}.{field.name}{suffix}"))
    return out


def traffic_map(statuses):
    """{(revision, tag): percent} of a list of TrafficTargetStatus messages."""
    return {(s.revision, s.tag or ""): s.percent or 0 for s in statuses}


def main(argv):
    if len(argv) < 6:
        fail(f"usage: {argv[0]} PROJECT REGION SERVICE REVISION_A REVISION_B SERVICE...")
    project, region, service_id, revision_a, revision_b = argv[1:6]
    all_services = set(argv[6:]) | {service_id}
    parent = f"projects/{project}/locations/{region}"
    service_name = f"{parent}/services/{service_id}"

    client = apis.GetClientInstance("run", "v2")
    messages = apis.GetMessagesModule("run", "v2")
    services = client.projects_locations_services
    revisions = client.projects_locations_services_revisions
    operations = client.projects_locations_operations
    condition_state = messages.GoogleCloudRunV2Condition.StateValueValuesEnum
    target_type = messages.GoogleCloudRunV2TrafficTarget.TypeValueValuesEnum
    status_type = messages.GoogleCloudRunV2TrafficTargetStatus.TypeValueValuesEnum

    # services.get
    service = services.Get(messages.RunProjectsLocationsServicesGetRequest(name=service_name))
    check(service.name == service_name, "services.get decodes the name", service.name)
    check(isinstance(service.generation, int) and service.generation >= 1,
          "generation decodes as an int64", repr(service.generation))
    check(service.observedGeneration == service.generation,
          "observedGeneration equals generation once converged",
          (service.observedGeneration, service.generation))
    check(service.terminalCondition is not None and
          service.terminalCondition.state == condition_state.CONDITION_SUCCEEDED,
          "terminalCondition.state is the CONDITION_SUCCEEDED enum", service.terminalCondition)
    check(service.terminalCondition.type == "Ready", "terminalCondition.type is Ready")
    check(not service.reconciling, "reconciling is false")
    check(service.latestReadyRevision == f"{service_name}/revisions/{revision_b}",
          "latestReadyRevision is the full name of the latest revision",
          service.latestReadyRevision)
    check(service.latestCreatedRevision == service.latestReadyRevision,
          "latestCreatedRevision equals latestReadyRevision")
    check(bool(service.etag), "etag is set")
    check(bool(service.uri) and service.uri in (service.urls or []), "uri is set and in urls",
          (service.uri, service.urls))
    check(service.template is not None and len(service.template.containers) == 1 and
          bool(service.template.containers[0].image), "template.containers[0].image decodes")
    check(service.ingress == messages.GoogleCloudRunV2Service.IngressValueValuesEnum
          .INGRESS_TRAFFIC_ALL, "ingress decodes as an enum", service.ingress)
    unknown = unknown_fields(service, "service")
    check(not unknown, "every member of the Service is a field of the generated classes", unknown)

    # services.list, paged
    names, pages, token = [], 0, None
    while True:
        page = services.List(messages.RunProjectsLocationsServicesListRequest(
            parent=parent, pageSize=1, pageToken=token))
        pages += 1
        check(len(page.services) <= 1, f"services.list page {pages} honours pageSize=1")
        names.extend(s.name for s in page.services)
        token = page.nextPageToken
        if not token:
            break
        if pages > 50:
            fail("services.list never stops issuing nextPageToken")
    check(sorted(names) == sorted(f"{parent}/services/{s}" for s in all_services),
          f"services.list over {pages} pages returns each service exactly once", names)

    # revisions.list, paged, then revisions.get for each
    listed, token = [], None
    while True:
        page = revisions.List(messages.RunProjectsLocationsServicesRevisionsListRequest(
            parent=service_name, pageSize=1, pageToken=token))
        listed.extend(page.revisions)
        token = page.nextPageToken
        if not token or len(listed) > 50:
            break
    check([short(r.name) for r in listed] == [revision_b, revision_a],
          "revisions.list pages through both revisions, newest first",
          [short(r.name) for r in listed])
    for listed_revision in listed:
        revision = revisions.Get(
            messages.RunProjectsLocationsServicesRevisionsGetRequest(name=listed_revision.name))
        label = short(revision.name)
        check(revision.service == service_name, f"revisions.get {label}: service is the parent")
        check(revision.generation == 1 and isinstance(revision.generation, int),
              f"revisions.get {label}: generation decodes as an int64", repr(revision.generation))
        ready = [c for c in revision.conditions if c.type == "Ready"]
        check(len(ready) == 1 and ready[0].state == condition_state.CONDITION_SUCCEEDED,
              f"revisions.get {label}: Ready condition is CONDITION_SUCCEEDED", revision.conditions)
        check(bool(revision.containers) and revision.containers[0].image == listed_revision
              .containers[0].image, f"revisions.get {label}: containers[0].image matches the list")
        check(bool(revision.creator), f"revisions.get {label}: creator is set")
        unknown = unknown_fields(revision, "revision")
        check(not unknown,
              f"revisions.get {label}: every member is a field of the generated classes", unknown)
        check(revision.createTime == listed_revision.createTime and bool(revision.createTime),
              f"revisions.get {label}: createTime matches the list")

    # services.patch (updateMask=traffic, etag from get) -> Operation
    traffic = [
        messages.GoogleCloudRunV2TrafficTarget(
            type=target_type.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision=revision_a,
            percent=40, tag="green"),
        messages.GoogleCloudRunV2TrafficTarget(
            type=target_type.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent=60),
    ]
    body = messages.GoogleCloudRunV2Service(etag=service.etag, traffic=traffic,
                                             template=service.template)
    operation = services.Patch(messages.RunProjectsLocationsServicesPatchRequest(
        name=service_name, googleCloudRunV2Service=body, updateMask="traffic",
        allowMissing=False, validateOnly=False))
    check(operation.name.startswith(f"{parent}/operations/"),
          "services.patch returns an Operation named under the location", operation.name)
    metadata = encoding.MessageToPyValue(operation.metadata)
    check(metadata.get("@type") == "type.googleapis.com/google.cloud.run.v2.Service",
          "the Operation metadata is a Service", metadata.get("@type"))
    # The driver sets a reconcile delay, so the snapshot taken at the write is still reconciling.
    check(metadata.get("reconciling") is True and metadata.get("generation") ==
          str(service.generation + 1), "the metadata snapshot is the reconciling new generation",
          (metadata.get("reconciling"), metadata.get("generation")))

    # operations.get, then operations.wait (at least once) until done
    got = operations.Get(messages.RunProjectsLocationsOperationsGetRequest(name=operation.name))
    check(got.name == operation.name, "operations.get returns the same Operation")
    waited = got
    for attempt in range(20):
        waited = operations.Wait(messages.RunProjectsLocationsOperationsWaitRequest(
            name=operation.name,
            googleLongrunningWaitOperationRequest=messages.GoogleLongrunningWaitOperationRequest(
                timeout="10s")))
        if waited.done:
            break
    check(waited.done and waited.name == operation.name,
          f"operations.wait returns the Operation done (after {attempt + 1} call(s))")
    check(waited.error is None, "the Operation has no error", waited.error)
    response = encoding.PyValueToMessage(messages.GoogleCloudRunV2Service,
                                         encoding.MessageToPyValue(waited.response))
    check(response.name == service_name and response.generation == service.generation + 1,
          "the Operation response decodes as the patched Service, one generation on",
          (response.name, response.generation))
    check(response.terminalCondition.state == condition_state.CONDITION_SUCCEEDED,
          "the Operation response is converged")

    # The patched state read back
    after = services.Get(messages.RunProjectsLocationsServicesGetRequest(name=service_name))
    check(after.generation == service.generation + 1 and
          after.observedGeneration == after.generation,
          "services.get after the patch: generation advanced by one and observed",
          (after.generation, after.observedGeneration))
    check(after.latestCreatedRevision == service.latestCreatedRevision,
          "a traffic-only patch creates no revision")
    check(after.etag != service.etag, "the etag changed")
    want = {(revision_a, "green"): 40, (revision_b, ""): 60}
    check(traffic_map(after.trafficStatuses) == want,
          "trafficStatuses hold the patched split, LATEST resolved",
          traffic_map(after.trafficStatuses))
    types = {(s.revision, s.type) for s in after.trafficStatuses}
    check(types == {(revision_a, status_type.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION),
                    (revision_b, status_type.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST)},
          "trafficStatuses types decode as enums", types)
    tagged = [s for s in after.trafficStatuses if s.tag == "green"]
    check(len(tagged) == 1 and bool(tagged[0].uri), "the tagged traffic status has a uri")

    # A stale etag is refused with 409 and changes nothing.
    stale = messages.GoogleCloudRunV2Service(etag=service.etag, traffic=traffic[1:])
    try:
        services.Patch(messages.RunProjectsLocationsServicesPatchRequest(
            name=service_name, googleCloudRunV2Service=stale, updateMask="traffic"))
        fail("a patch with a stale etag succeeded")
    except apitools_exceptions.HttpError as error:
        check(error.status_code == 409, "a stale etag is refused with 409", error.status_code)
    unchanged = services.Get(messages.RunProjectsLocationsServicesGetRequest(name=service_name))
    check(unchanged.generation == after.generation and unchanged.etag == after.etag,
          "the refused patch changed nothing")

    # A missing revision is a 404 the client raises as HttpNotFoundError.
    try:
        revisions.Get(messages.RunProjectsLocationsServicesRevisionsGetRequest(
            name=f"{service_name}/revisions/{service_id}-nope"))
        fail("revisions.get of a missing revision succeeded")
    except apitools_exceptions.HttpNotFoundError:
        check(True, "revisions.get of a missing revision raises HttpNotFoundError")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
