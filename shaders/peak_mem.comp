#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Device memory bandwidth (`vkinfer bench peak`): WRITE=0 reads n uvec4 and sums them, WRITE=1
// writes a pattern of the element index. Grid-stride, so that a grid sized to fill the device
// covers any window; 16-byte accesses, consecutive threads on consecutive elements. The
// read kernel's per-thread sums and the written pattern are checked by the host (abi_peak.h).
#include "vki_abi.h"
#include "abi_peak.h"

layout(local_size_x = VKI_PEAK_LOCAL_SIZE, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

#if WRITE
layout(std430, set = 0, binding = VKI_PEAK_WRITE_BINDING_DST) writeonly buffer Dst { uvec4 dst[]; };
VKI_PUSH_BLOCK(VKI_PC_PEAK_WRITE)
#else
layout(std430, set = 0, binding = VKI_PEAK_READ_BINDING_SRC) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = VKI_PEAK_READ_BINDING_OUT) writeonly buffer Out { uint outv[]; };
VKI_PUSH_BLOCK(VKI_PC_PEAK_READ)
#endif

void main()
{
    const uint gid = gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    const uint total = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
#if WRITE
    for (uint i = gid; i < pc.n; i += total) {
        uvec4 w = 4u * (pc.first + i) + uvec4(0u, 1u, 2u, 3u);
        dst[i] = (w * 2654435761u) ^ pc.seed;
    }
#else
    // Four loads in flight per thread before the first add needs one.
    uvec4 s0 = uvec4(0u), s1 = uvec4(0u), s2 = uvec4(0u), s3 = uvec4(0u);
    uint i = gid;
    for (; i + 3u * total < pc.n; i += 4u * total) {
        s0 += src[i];
        s1 += src[i + total];
        s2 += src[i + 2u * total];
        s3 += src[i + 3u * total];
    }
    for (; i < pc.n; i += total) s0 += src[i];
    uvec4 s = s0 + s1 + s2 + s3;
    outv[pc.out_base + gid] = s.x + s.y + s.z + s.w;
#endif
}
