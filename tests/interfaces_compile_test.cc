// The interface headers are part of the core: this translation unit includes all of them and
// links runway_core only, so a header that needs an adapter library fails to build here.

#include <gtest/gtest.h>

#include "controller/interfaces/clock.h"
#include "controller/interfaces/cloud_build_client.h"
#include "controller/interfaces/cloud_run_client.h"
#include "controller/interfaces/container_engine_probe.h"
#include "controller/interfaces/http_transport.h"
#include "controller/interfaces/manifest_source.h"
#include "controller/interfaces/status_reporter.h"

namespace runway {
namespace {

TEST(InterfacesTest, DomainNamesFollowTheV2ResourceNames) {
  CloudRunServiceName name{"p-123456", "us-central1", "api"};
  EXPECT_EQ(name.ResourceName(), "projects/p-123456/locations/us-central1/services/api");
}

}  // namespace
}  // namespace runway
