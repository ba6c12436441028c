/* A fake LLVMEnzyme plugin for the tests of the C-API profile probe.
 *
 * It exports every symbol of Enzyme's C API.  Its three entry points take the parameter
 * lists of one profile (-DFAKE_STRONG_ZERO: v0.0.289, with strongZero and
 * nowrite_shadows; without it: v0.0.173) and, for the two functions the probe
 * differentiates, build the derivatives Enzyme would build with LLVM-C (resolved from
 * the libLLVM loaded before it), scaled by -DFAKE_FACTOR (1.0: right numbers).  Like
 * Enzyme's assertions, a parameter count that does not match the function aborts; a
 * width other than 1 returns NULL.  -DFAKE_MARKERS embeds signature strings as an
 * assertions build does.  No LLVM header is needed: the few LLVM-C functions used are
 * declared here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef FAKE_FACTOR
#define FAKE_FACTOR 1.0
#endif

typedef void *V; /* LLVMValueRef, LLVMTypeRef, ... */
typedef struct { void **Arguments; void *Return; void *KnownValues; } CFnTypeInfo;

extern V LLVMGetGlobalParent(V);
extern V LLVMGetModuleContext(V);
extern V LLVMDoubleTypeInContext(V);
extern V LLVMVoidTypeInContext(V);
extern V LLVMTypeOf(V);
extern V LLVMFunctionType(V, V *, unsigned, int);
extern V LLVMAddFunction(V, const char *, V);
extern V LLVMAppendBasicBlockInContext(V, V, const char *);
extern V LLVMCreateBuilderInContext(V);
extern void LLVMPositionBuilderAtEnd(V, V);
extern void LLVMDisposeBuilder(V);
extern V LLVMGetParam(V, unsigned);
extern unsigned LLVMCountParams(V);
extern V LLVMBuildLoad2(V, V, V, const char *);
extern V LLVMBuildStore(V, V, V);
extern V LLVMBuildFMul(V, V, V, const char *);
extern V LLVMBuildFAdd(V, V, V, const char *);
extern V LLVMConstReal(V, double);
extern V LLVMBuildRetVoid(V);
extern V LLVMBuildRet(V, V);

#ifdef FAKE_MARKERS
__attribute__((used)) static const char fake_markers[] = FAKE_MARKERS;
#endif

/* the option globals and the error handler slot */
uint8_t EnzymeFastMath[64];
void *CustomErrorHandler;

static void *chunk(void) { return calloc(1, 64); }

void *CreateEnzymeLogic(uint8_t post_opt) { (void)post_opt; return chunk(); }
void FreeEnzymeLogic(void *l) { free(l); }
void ClearEnzymeLogic(void *l) { (void)l; }
void EnzymeLogicErasePreprocessedFunctions(void *l) { (void)l; }
void *CreateTypeAnalysis(void *l, char **names, void *rules, size_t n) { (void)l; (void)names; (void)rules; (void)n; return chunk(); }
void FreeTypeAnalysis(void *t) { free(t); }
void ClearTypeAnalysis(void *t) { (void)t; }
void *EnzymeNewTypeTree(void) { return chunk(); }
void *EnzymeNewTypeTreeCT(int ct, V ctx) { (void)ct; (void)ctx; return chunk(); }
void EnzymeFreeTypeTree(void *t) { free(t); }
uint8_t EnzymeMergeTypeTree(void *a, void *b) { (void)a; (void)b; return 1; }
void EnzymeTypeTreeOnlyEq(void *t, int64_t x) { (void)t; (void)x; }
const char *EnzymeTypeTreeToString(void *t) { (void)t; return strdup("{}"); }
void EnzymeTypeTreeToStringFree(const char *s) { free((void *)s); }
void EnzymeSetCLBool(void *opt, uint8_t v) { (void)opt; (void)v; }
void EnzymeSetCLInteger(void *opt, int64_t v) { (void)opt; (void)v; }
void EnzymeRegisterAllocationHandler(char *n, void *a, void *f) { (void)n; (void)a; (void)f; }

typedef struct { V fn; } Augmentation;
V EnzymeExtractFunctionFromAugmentation(void *a) { return a ? ((Augmentation *)a)->fn : NULL; }
V EnzymeExtractTapeTypeFromAugmentation(void *a) { (void)a; return NULL; }
V EnzymeExtractUnderlyingTapeTypeFromAugmentation(void *a) { (void)a; return NULL; }
void EnzymeExtractReturnInfo(void *a, int64_t *data, uint8_t *existed, size_t n) {
  (void)a; (void)data; for (size_t i = 0; i < n; i++) existed[i] = 0;
}

/* void f(double *x, double *y) { *y = x[0]*x[0]; }: the reverse pass (and the primal
 * before it when combined), the augmented primal, the forward derivative of x*x*x. */
typedef struct { V b, ctx, dbl, fn; } Gen;

static Gen start(V todiff, const char *name, V ret, unsigned nparams) {
  Gen g;
  V mod = LLVMGetGlobalParent(todiff);
  g.ctx = LLVMGetModuleContext(mod);
  g.dbl = LLVMDoubleTypeInContext(g.ctx);
  V params[4];
  V p0 = LLVMTypeOf(LLVMGetParam(todiff, 0));
  for (unsigned i = 0; i < nparams; i++) params[i] = p0;
  g.fn = LLVMAddFunction(mod, name, LLVMFunctionType(ret, params, nparams, 0));
  g.b = LLVMCreateBuilderInContext(g.ctx);
  LLVMPositionBuilderAtEnd(g.b, LLVMAppendBasicBlockInContext(g.ctx, g.fn, "entry"));
  return g;
}

static V reverse(V todiff, int primal, int gradient, const char *name) {
  Gen g = start(todiff, name, LLVMVoidTypeInContext(LLVMGetModuleContext(LLVMGetGlobalParent(todiff))), 4);
  V x = LLVMGetParam(g.fn, 0), dx = LLVMGetParam(g.fn, 1), y = LLVMGetParam(g.fn, 2), dy = LLVMGetParam(g.fn, 3);
  V a = LLVMBuildLoad2(g.b, g.dbl, x, "a");
  if (primal) LLVMBuildStore(g.b, LLVMBuildFMul(g.b, a, a, "m"), y);
  if (gradient) {
    V s = LLVMBuildLoad2(g.b, g.dbl, dy, "s");
    LLVMBuildStore(g.b, LLVMConstReal(g.dbl, 0.0), dy);
    V two_a = LLVMBuildFMul(g.b, a, LLVMConstReal(g.dbl, 2.0 * FAKE_FACTOR), "ta");
    V d = LLVMBuildLoad2(g.b, g.dbl, dx, "d");
    LLVMBuildStore(g.b, LLVMBuildFAdd(g.b, d, LLVMBuildFMul(g.b, two_a, s, "p"), "n"), dx);
  }
  LLVMBuildRetVoid(g.b);
  LLVMDisposeBuilder(g.b);
  return g.fn;
}

static V forward(V todiff) {
  V dbl = LLVMDoubleTypeInContext(LLVMGetModuleContext(LLVMGetGlobalParent(todiff)));
  Gen g = start(todiff, "fwddiffeg", dbl, 2);
  V x = LLVMGetParam(g.fn, 0), dx = LLVMGetParam(g.fn, 1);
  V xx = LLVMBuildFMul(g.b, x, x, "xx");
  V t = LLVMBuildFMul(g.b, xx, LLVMConstReal(g.dbl, 3.0 * FAKE_FACTOR), "t");
  LLVMBuildRet(g.b, LLVMBuildFMul(g.b, t, dx, "r"));
  LLVMDisposeBuilder(g.b);
  return g.fn;
}

#ifdef FAKE_STRONG_ZERO
#define STRONG_ZERO uint8_t strong_zero,
#define NOWRITE uint8_t *nowrite, size_t n_nowrite,
#else
#define STRONG_ZERO
#define NOWRITE
#endif

V EnzymeCreatePrimalAndGradient(void *logic, V req, V ip, V todiff, int ret_type, int *acts, size_t n_acts, void *ta,
                                uint8_t return_value, uint8_t dret_used, int mode, uint8_t runtime_activity,
                                STRONG_ZERO unsigned width, uint8_t free_memory, V additional_arg,
                                uint8_t force_anonymous_tape, CFnTypeInfo info, uint8_t subsequent,
                                uint8_t *overwritten, size_t n_overwritten, void *augmented, uint8_t atomic_add) {
  if (n_overwritten != LLVMCountParams(todiff)) abort(); /* Enzyme asserts this */
  if (width != 1 || n_acts != n_overwritten || LLVMCountParams(todiff) != 2) return NULL;
  if (mode == 3) return reverse(todiff, 1, 1, "diffef");
  if (mode == 2 && augmented) return reverse(todiff, 0, 1, "diffef.gradient");
  return NULL;
}

V EnzymeCreateForwardDiff(void *logic, V req, V ip, V todiff, int ret_type, int *acts, size_t n_acts, void *ta,
                          uint8_t return_value, int mode, uint8_t free_memory, uint8_t runtime_activity,
                          STRONG_ZERO unsigned width, V additional_arg, CFnTypeInfo info, uint8_t subsequent,
                          uint8_t *overwritten, size_t n_overwritten, void *augmented) {
  if (n_overwritten != LLVMCountParams(todiff)) abort();
  if (width != 1 || mode != 0 || n_acts != 1 || LLVMCountParams(todiff) != 1) return NULL;
  return forward(todiff);
}

void *EnzymeCreateAugmentedPrimal(void *logic, V req, V ip, V todiff, int ret_type, int *acts, size_t n_acts,
                                  void *ta, uint8_t return_used, uint8_t shadow_return_used, CFnTypeInfo info,
                                  uint8_t subsequent, uint8_t *overwritten, size_t n_overwritten, NOWRITE
                                  uint8_t force_anonymous_tape, uint8_t runtime_activity, STRONG_ZERO
                                  unsigned width, uint8_t atomic_add) {
  if (n_overwritten != LLVMCountParams(todiff)) abort();
#ifdef FAKE_STRONG_ZERO
  if (n_nowrite != n_overwritten) abort();
#endif
  if (width != 1 || n_acts != n_overwritten || LLVMCountParams(todiff) != 2) return NULL;
  Augmentation *a = calloc(1, sizeof *a);
  a->fn = reverse(todiff, 1, 0, "augmented_f");
  return a;
}
