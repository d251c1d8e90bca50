/* CPU reference of the activations (vki_activation), shared by the ops that apply one. The
 * kernels' versions are shaders/activation.glsl. */
#ifndef VKINFER_OPS_ACTIVATION_H
#define VKINFER_OPS_ACTIVATION_H

#include "../vkinfer_graph.h"

#include <math.h>

static inline float vki__activation_ref(vki_activation act, float x)
{
    switch (act) {
    case VKI_ACT_SILU: return x / (1.0f + expf(-x));
    case VKI_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678f));
    case VKI_ACT_GELU_TANH:
        return 0.5f * x * (1.0f + tanhf(0.79788456f * (x + 0.044715f * x * x * x)));
    case VKI_ACT_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    default: return x;
    }
}

#endif
