// The behaviour every IncidentStore must show, as one value-parameterized
// suite (IncidentStoreContract in incident_store_contract.cpp) run against
// the memory store here (unit_containment_incident) and against a real
// redis-server in tests/integration/redis (integration_redis).
//
// A backend makes stores that share one place (one map, one Redis); each
// test gets a fresh backend. Times are near the real clock, because the
// Redis store's keys expire by Redis' clock.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "containment/incident_store.hpp"

namespace floodgate::containment::contract {

class IncidentStoreBackend {
 public:
  virtual ~IncidentStoreBackend() = default;
  virtual std::unique_ptr<IncidentStore> make(IncidentLimits limits) = 0;
};

struct BackendFactory {
  std::string name;  // the instantiation's test name part
  std::function<std::unique_ptr<IncidentStoreBackend>()> make;
};

class IncidentStoreContract : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override { m_backend = GetParam().make(); }
  IncidentStore& store(IncidentLimits limits = {}) {
    m_stores.push_back(m_backend->make(limits));
    return *m_stores.back();
  }

 private:
  std::unique_ptr<IncidentStoreBackend> m_backend;
  std::vector<std::unique_ptr<IncidentStore>> m_stores;
};

// What gtest prints for the parameter (ctest names the tests with it).
inline void PrintTo(const BackendFactory& factory, std::ostream* out) { *out << factory.name; }

// For INSTANTIATE_TEST_SUITE_P's name generator.
inline std::string backend_name(const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; }

}  // namespace floodgate::containment::contract
