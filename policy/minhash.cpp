#include "policy/minhash.hpp"

// Two short hashes per token (the token, then the shingle): inlined rather
// than called through the shared library, they cost a fraction. Same
// xxHash code and version as the library, so the same values.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace floodgate::policy {

namespace {

// splitmix64's finaliser: a bijection of 64-bit values whose output bits
// each depend on all input bits, so the minimum under each seed behaves like
// the minimum under an independent random permutation.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Fixed forever: changing them changes every band key, so every counter in
// Redis would restart from zero.
constexpr std::uint64_t k_seed_step = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t k_band_seed = 0x666c6f6f64676174ULL;  // "floodgat"

// The 40 permutations of every shingle are most of the fingerprint's cost
// on ordinary mail. Written as an unconditional minimum so the loop
// vectorises; on x86-64 a second copy is compiled for AVX-512 (x86-64-v4,
// whose 64-bit vector multiply the mixer needs) and picked at load time by
// the CPU, 3-4 times faster there. AVX2 has no 64-bit multiply and its
// emulation measured slower than scalar code, so there is no AVX2 copy.
// Integer arithmetic only: every copy gives the same minima. Not under
// ThreadSanitizer: the copy is chosen by an ifunc resolver that the dynamic
// loader runs before TSan's runtime is up, and the instrumented resolver
// crashed every binary linking this file at start.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("arch=x86-64-v4", "default")))
#endif
void permute_into_minima(std::uint64_t* __restrict minima, std::uint64_t shingle) {
  for (std::size_t i = 0; i < MinHashSketch::k_hashes; ++i) {
    const std::uint64_t value = mix(shingle + (i + 1) * k_seed_step);
    minima[i] = value < minima[i] ? value : minima[i];
  }
}

}  // namespace

MinHashSketch::MinHashSketch() { m_minima.fill(~std::uint64_t{0}); }

void MinHashSketch::add_token(std::string_view token) {
  m_recent[m_tokens % k_shingle_tokens] = XXH3_64bits(token.data(), token.size());
  ++m_tokens;
  if (m_tokens < k_shingle_tokens) return;
  // The shingle in token order, whatever slot of the ring holds the oldest.
  std::array<std::uint64_t, k_shingle_tokens> shingle;
  for (std::size_t i = 0; i < k_shingle_tokens; ++i) {
    shingle[i] = m_recent[(m_tokens + i) % k_shingle_tokens];
  }
  add_shingle(XXH3_64bits(shingle.data(), sizeof shingle));
}

void MinHashSketch::add_shingle(std::uint64_t shingle) { permute_into_minima(m_minima.data(), shingle); }

std::vector<std::uint64_t> MinHashSketch::band_keys() const {
  std::vector<std::uint64_t> keys;
  if (!has_signature()) return keys;
  keys.reserve(k_bands);
  for (std::size_t band = 0; band < k_bands; ++band) {
    keys.push_back(
        XXH3_64bits_withSeed(&m_minima[band * k_rows], k_rows * sizeof(std::uint64_t), k_band_seed + band));
  }
  return keys;
}

}  // namespace floodgate::policy
