// Steps 1024 CartPoles on the CPU through the installed library and checks the episode counter.
#include <cstdio>

#include "batchpole/env/vec_env.hpp"

int main() {
  auto device = batchpole::make_device({batchpole::DeviceRequest::parse("cpu")});
  batchpole::VecEnv env(*device, 1024);
  env.reset(1);
  const uint64_t ended = env.run_random(200);
  std::printf("installed batchpole: %llu episodes ended in 200 random steps of 1024 envs\n",
              static_cast<unsigned long long>(ended));
  return ended > 0 ? 0 : 1;
}
