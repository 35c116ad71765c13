// Deterministic reductions over a rollout: each CUDA block sums one kReduceBlock-element block
// (strided per thread, then a fixed tree in shared memory), a second one-block pass sums the
// blocks in order. The same data always gives the same bits, whatever the GPU's scheduling.
#include "cuda_check.cuh"
#include "rl_ops.cuh"

namespace batchpole::cuda {

namespace {

template <class T>
__device__ T block_tree(T mine) {
  // Raw storage: __shared__ variables cannot have constructors (T has member initialisers).
  alignas(T) __shared__ unsigned char raw[sizeof(T) * kBlock];
  T* shared = reinterpret_cast<T*>(raw);
  shared[threadIdx.x] = mine;
  __syncthreads();
  for (unsigned half = kBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half)
      shared[threadIdx.x] = add(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  return shared[0];
}

// A population: grid row blockIdx.y is agent k, whose rows start k * stride rows in.
template <class T, class Row>
__global__ void reduce_pass1(Row row, int64_t n, int64_t stride, T* partial) {
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kReduceBlock;
  const int64_t end = begin + kReduceBlock < n ? begin + kReduceBlock : n;
  const int64_t at = static_cast<int64_t>(blockIdx.y) * stride;
  T acc;
  for (int64_t k = begin + threadIdx.x; k < end; k += kBlock) acc = add(acc, row(at + k));
  const T total = block_tree(acc);
  if (threadIdx.x == 0) partial[static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = total;
}

// One block per agent.
template <class T>
__global__ void reduce_pass2(const T* partial, int64_t blocks, T* out) {
  T acc;
  const T* mine = partial + static_cast<int64_t>(blockIdx.x) * blocks;
  for (int64_t b = threadIdx.x; b < blocks; b += kBlock) acc = add(acc, mine[b]);
  const T total = block_tree(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = total;
}

template <class T, class Row>
void reduce(cudaStream_t stream, Row row, int64_t n, T* partial, T* out, int64_t agents,
            int64_t stride) {
  const int64_t blocks = reduce_blocks(n);
  if (n > 0) {
    launch(reduce_pass1<T, Row>, dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(agents)),
           kBlock, stream, row, n, stride, partial);
  }
  launch(reduce_pass2<T>, static_cast<unsigned>(agents), kBlock, stream, partial,
         n > 0 ? blocks : 0, out);
}

struct MomentsRow {
  const float* x;
  const uint8_t* mask;
  __device__ Moments operator()(int64_t k) const { return moments_row(x, mask, k); }
};

struct TallyRow {
  EpisodeRows rows;
  __device__ EpisodeTally operator()(int64_t k) const { return episode_tally_row(rows, k); }
};

}  // namespace

int64_t reduce_blocks(int64_t n) { return n > 0 ? (n + kReduceBlock - 1) / kReduceBlock : 1; }

void launch_moments(cudaStream_t stream, const float* x, const uint8_t* mask, int64_t n,
                    Moments* partial, Moments* out, int64_t agents, int64_t stride) {
  reduce(stream, MomentsRow{x, mask}, n, partial, out, agents, stride);
}

void launch_episode_tally(cudaStream_t stream, const EpisodeRows& rows, int64_t n,
                          EpisodeTally* partial, EpisodeTally* out, int64_t agents,
                          int64_t stride) {
  reduce(stream, TallyRow{rows}, n, partial, out, agents, stride);
}

}  // namespace batchpole::cuda
