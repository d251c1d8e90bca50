// Workgroup reductions of the kernels that run one workgroup per row (norm.comp, softmax.comp).
// Include after the local-size declaration (the shared array is sized by gl_WorkGroupSize.x, a
// specialisation constant).
//   SUBGROUP=1  reduce with subgroup arithmetic, then across subgroups through shared memory;
//               else a shared-memory tree (profiles without GL_KHR_shader_subgroup_arithmetic)
#ifndef VKI_REDUCE_GLSL
#define VKI_REDUCE_GLSL

#if SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

#define VKI_REDUCE_ADD 0u
#define VKI_REDUCE_MAX 1u

// One slot per invocation (tree) or per subgroup; vec2 so that a norm reduces its two sums at once.
shared vec2 vki_red[gl_WorkGroupSize.x];

vec2 vki_combine(vec2 a, vec2 b, uint op) { return op == VKI_REDUCE_MAX ? max(a, b) : a + b; }

// Sum or maximum of `v` over the workgroup, returned to every invocation. Holds barriers: every
// invocation of the workgroup must call it, in uniform control flow. Safe to call repeatedly.
vec2 vki_reduce(vec2 v, uint op)
{
#if SUBGROUP
    v = op == VKI_REDUCE_MAX ? subgroupMax(v) : subgroupAdd(v);
    if (gl_SubgroupInvocationID == 0) vki_red[gl_SubgroupID] = v;
    memoryBarrierShared();
    barrier();
    vec2 r = vki_red[0];
    for (uint i = 1; i < gl_NumSubgroups; i++) r = vki_combine(r, vki_red[i], op);
#else
    uint t = gl_LocalInvocationID.x, n = gl_WorkGroupSize.x;
    vki_red[t] = v;
    memoryBarrierShared();
    barrier();
    // Halving steps from the power of two at or above n; `t + s < n` keeps any n correct.
    uint s = 1u << findMSB(n);
    if (s < n) s <<= 1;
    for (s >>= 1; s > 0; s >>= 1) {
        if (t < s && t + s < n) vki_red[t] = vki_combine(vki_red[t], vki_red[t + s], op);
        memoryBarrierShared();
        barrier();
    }
    vec2 r = vki_red[0];
#endif
    // Everyone has read the result before the next call overwrites the slots.
    barrier();
    return r;
}

#endif
