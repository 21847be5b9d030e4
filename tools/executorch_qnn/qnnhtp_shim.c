/* qnnhtp_shim.c: a stand-in libQnnHtp.so that fixes one struct-layout mismatch between the QNN headers
 * the ExecuTorch 1.5.1 wheel was compiled with (QNN core API 2.27) and the QNN 2.51 libQnnHtp.so that
 * onnxruntime-qnn 2.7 ships.
 *
 * The mismatch: QnnHtpDevice_CustomConfig_t is { uint32 option; union {...} }. In the old headers the
 * union holds only 32-bit members (socModel, arch {deviceId, arch}, ...), so it starts at byte 4 and the
 * struct is 12 bytes. QNN 2.51 added a `void* htpExtension` member to the union: the union becomes
 * 8-byte aligned, starts at byte 8, and the struct is 16 bytes. ExecuTorch writes socModel at byte 4,
 * QNN 2.51 reads byte 8 (zero), and device creation fails with "unknown custom config socModel 0" (14001).
 *
 * What this does: QnnInterface_getProviders() loads the real library ($QNNHTP_REAL), copies its provider
 * tables, and replaces one function pointer, deviceCreate, with a wrapper. The wrapper rewrites every
 * device custom config from the old 12-byte layout into the new 16-byte one (bytes 4..11 move to 8..15)
 * and calls the real deviceCreate. Everything else (graph, context, perf configs) is passed through
 * untouched: those structs have the same layout in both header versions.
 *
 * This is a diagnosis aid, not a supported deployment path: the right fix is an ExecuTorch built
 * against the same QNN headers as the QNN runtime it loads.
 *
 * Build: build_shim.sh (gcc -shared -fPIC -Wl,-soname,libQnnHtp.so -Wl,-z,nodelete ... -ldl).
 *   soname libQnnHtp.so + nodelete: ExecuTorch dlopen()s "libQnnHtp.so", probes its version and
 *   dlclose()s it; without nodelete a later dlopen could resolve to the real library instead.
 * Env: QNNHTP_REAL=/path/to/real/libQnnHtp.so (required), QNNHTP_SHIM_VERBOSE=1 (log each config).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* QnnInterface_t: uint32 backendId, 4 pad bytes, const char* providerName (byte 8),
 * Qnn_ApiVersion_t apiVersion (6 x uint32, bytes 16..39), then the function-pointer table (byte 40). */
#define IFACE_HDR_BYTES 40
/* deviceCreate is the 41st pointer of QNN_INTERFACE_VER_TYPE (propertyHasCapability is index 0). */
#define SLOT_DEVICE_CREATE 40
/* Bytes of each provider copied: the header plus 251 pointers, more than QNN 2.51's table holds. */
#define COPY_BYTES 2048
#define MAX_PROVIDERS 8
#define QNN_DEVICE_CONFIG_OPTION_CUSTOM 0

typedef int (*getProviders_fn)(const void*** providers, uint32_t* num);
typedef int (*deviceCreate_fn)(void* logger, const void** config, void** device);

/* QnnDevice_Config_t: { uint32 option; union { void* customConfig; ... } } -> pointer at byte 8. */
typedef struct { uint32_t option; uint32_t pad; void* ptr; } DeviceConfig;
/* QnnHtpDevice_CustomConfig_t as the old headers lay it out: union at byte 4 (12 bytes in all). */
typedef struct { uint32_t option; uint32_t value[2]; } OldHtpCustom;
/* The same struct in QNN 2.51: the union gained a pointer, so it is 8-aligned at byte 8 (16 bytes). */
typedef struct { uint32_t option; uint32_t pad; uint32_t value[2]; } NewHtpCustom;

static void* real_lib;
static deviceCreate_fn real_device_create;
static unsigned char* copies[MAX_PROVIDERS];
static const void* copy_ptrs[MAX_PROVIDERS];
static int verbose;

/* deviceCreate wrapper: same configs, with each custom config rewritten into the new layout. */
static int device_create_wrap(void* logger, const void** config, void** device) {
  if (!config) return real_device_create(logger, config, device);
  size_t n = 0;
  while (config[n]) n++;
  /* Kept allocated on purpose (a few bytes per device): QNN may keep pointers into them. */
  DeviceConfig* cfgs = calloc(n, sizeof(DeviceConfig));
  NewHtpCustom* custom = calloc(n, sizeof(NewHtpCustom));
  const void** list = calloc(n + 1, sizeof(void*));
  if (!cfgs || !custom || !list) return real_device_create(logger, config, device);
  for (size_t i = 0; i < n; i++) {
    cfgs[i] = *(const DeviceConfig*)config[i];
    if (cfgs[i].option == QNN_DEVICE_CONFIG_OPTION_CUSTOM && cfgs[i].ptr) {
      const OldHtpCustom* old = cfgs[i].ptr;
      custom[i].option = old->option;      /* byte 0 stays at byte 0 */
      custom[i].value[0] = old->value[0];  /* byte 4 -> byte 8 (socModel, or arch.deviceId) */
      custom[i].value[1] = old->value[1];  /* byte 8 -> byte 12 (arch.arch) */
      cfgs[i].ptr = &custom[i];
      if (verbose)
        fprintf(stderr, "[qnnhtp_shim] device custom config option=%u value=%u,%u moved to byte 8\n",
                old->option, old->value[0], old->value[1]);
    } else if (verbose) {
      fprintf(stderr, "[qnnhtp_shim] device config option=%u passed through\n", cfgs[i].option);
    }
    list[i] = &cfgs[i];
  }
  return real_device_create(logger, list, device);
}

/* The only symbol ExecuTorch looks up in libQnnHtp.so. */
int QnnInterface_getProviders(const void*** providers, uint32_t* num) {
  verbose = getenv("QNNHTP_SHIM_VERBOSE") != NULL;
  if (!real_lib) {
    const char* path = getenv("QNNHTP_REAL");
    if (!path) {
      fprintf(stderr, "[qnnhtp_shim] QNNHTP_REAL is not set (path of the real libQnnHtp.so)\n");
      return 1;
    }
    real_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!real_lib) {
      fprintf(stderr, "[qnnhtp_shim] cannot load %s: %s\n", path, dlerror());
      return 1;
    }
  }
  getProviders_fn real = (getProviders_fn)dlsym(real_lib, "QnnInterface_getProviders");
  if (!real) {
    fprintf(stderr, "[qnnhtp_shim] QnnInterface_getProviders missing in the real library\n");
    return 1;
  }
  const void** real_providers;
  uint32_t count;
  int rc = real(&real_providers, &count);
  if (rc) return rc;
  if (count > MAX_PROVIDERS) count = MAX_PROVIDERS;
  for (uint32_t i = 0; i < count; i++) {
    if (!copies[i]) {
      copies[i] = malloc(COPY_BYTES);
      if (!copies[i]) return 1;
      memcpy(copies[i], real_providers[i], COPY_BYTES);
      void** slots = (void**)(copies[i] + IFACE_HDR_BYTES);
      real_device_create = (deviceCreate_fn)slots[SLOT_DEVICE_CREATE];
      slots[SLOT_DEVICE_CREATE] = (void*)device_create_wrap;
    }
    copy_ptrs[i] = copies[i];
  }
  *providers = copy_ptrs;
  *num = count;
  return 0;
}
