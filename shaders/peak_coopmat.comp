#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#include "coopmat.glsl"
// Cooperative-matrix fp16 throughput (`vkinfer bench peak`), on VK_KHR_cooperative_matrix
// (peak_coopmat_khr_f16, COOPMAT_KHR) or VK_NV_cooperative_matrix (peak_coopmat_f16) as
// matmul_coopmat.comp uses them (the fragment shape is the profile's, by specialisation). A and B
// are constant fragments built from push constants and never touch memory; CHAINS independent
// accumulators keep the matrix units busy past one multiply-add's latency. Each accumulator
// element ends as iters * FRAG_K * a * b, which the host checks (abi_peak.h).
#include "vki_abi.h"
#include "abi_peak.h"

layout(local_size_x = VKI_PEAK_CM_LOCAL_SIZE, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(constant_id = VKI_SPEC_PEAK_FRAG_M) const uint FRAG_M = 16;
layout(constant_id = VKI_SPEC_PEAK_FRAG_N) const uint FRAG_N = 16;
layout(constant_id = VKI_SPEC_PEAK_FRAG_K) const uint FRAG_K = 16;

layout(std430, set = 0, binding = 0) writeonly buffer Out { float outv[]; };

VKI_PUSH_BLOCK(VKI_PC_PEAK_CM)

void main()
{
    cm_a(FRAG_M, FRAG_K) a =
        cm_a(FRAG_M, FRAG_K)(float16_t(pc.a));
    cm_b(FRAG_K, FRAG_N) b =
        cm_b(FRAG_K, FRAG_N)(float16_t(pc.b));
    cm_acc(FRAG_M, FRAG_N) acc[VKI_PEAK_CM_CHAINS];
    [[unroll]] for (uint j = 0u; j < VKI_PEAK_CM_CHAINS; j++)
        acc[j] = cm_acc(FRAG_M, FRAG_N)(0.0);
    for (uint i = 0u; i < pc.iters; i++) {
        [[unroll]] for (uint j = 0u; j < VKI_PEAK_CM_CHAINS; j++)
            acc[j] = cm_mul_add(a, b, acc[j]);
    }
    [[unroll]] for (uint j = 1u; j < VKI_PEAK_CM_CHAINS; j++) acc[0] = acc[0] + acc[j];
    const uint sg = gl_WorkGroupID.x * gl_NumSubgroups + gl_SubgroupID;
    cm_store(acc[0], outv, sg * FRAG_M * FRAG_N, FRAG_N, CM_ROW_MAJOR);
}
