/* What XNNPACK will see on this (emulated) aarch64 CPU: the kernel's hwcaps and cpuinfo's
 * view of them, which pick XNNPACK's int8 GEMM kernels (dot product: 4x16c4 neondot;
 * without: 2x8c8 neon_mlal). scripts/arm64.sh runs it under each qemu -cpu model, so that
 * a "without dot product" test run really exercises the other kernels. */
#include <cpuinfo.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <xnnpack.h>

int main(void) {
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  if (!cpuinfo_initialize()) {
    printf("cpuinfo_initialize failed\n");
    return 1;
  }
  const enum xnn_status st = xnn_initialize(NULL);
  /* HWCAP_ASIMDDP = bit 20, HWCAP2_I8MM = bit 13 (asm/hwcap.h). */
  printf(
      "hwcap asimddp=%d i8mm=%d | cpuinfo neon=%d fma=%d fp16arith=%d dot=%d uarch=%#x cores=%u | xnn_initialize=%d\n",
      (int)((hwcap >> 20) & 1), (int)((hwcap2 >> 13) & 1), cpuinfo_has_arm_neon(), cpuinfo_has_arm_neon_fma(),
      cpuinfo_has_arm_neon_fp16_arith(), cpuinfo_has_arm_neon_dot(), (unsigned)cpuinfo_get_core(0)->uarch,
      cpuinfo_get_cores_count(), (int)st);
  return st == xnn_status_success ? 0 : 1;
}
