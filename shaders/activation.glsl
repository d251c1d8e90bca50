// Activation functions in fp32, by id (VKI_ABI_ACT_* of abi_unary.h). Each is written so that
// large |x| saturates instead of producing inf / inf.
#ifndef VKI_ACTIVATION_GLSL
#define VKI_ACTIVATION_GLSL

// GLSL has no erf. Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 for all x (plus fp32 rounding).
float vki_erf(float x)
{
    float t = 1.0 / (1.0 + 0.3275911 * abs(x));
    float p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(x) * (1.0 - p * exp(-x * x));
}

// exp(-x) overflows to inf for x < -88, and 1 / inf is the right limit, 0.
float vki_sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

// tanh(u) = 1 - 2 / (e^2u + 1) saturates to +-1 where the textbook ratio becomes inf / inf.
float vki_tanh(float u) { return 1.0 - 2.0 / (exp(2.0 * u) + 1.0); }

float vki_activate(uint act, float x)
{
    switch (act) {
    case VKI_ABI_ACT_SILU: return x * vki_sigmoid(x);
    case VKI_ABI_ACT_GELU: return 0.5 * x * (1.0 + vki_erf(x * 0.70710678118654752));
    case VKI_ABI_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + vki_tanh(0.79788456080286536 * (x + 0.044715 * x * x * x)));
    case VKI_ABI_ACT_QUICK_GELU: return x * vki_sigmoid(1.702 * x);
    default: return x;
    }
}

#endif
