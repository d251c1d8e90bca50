#version 450
#extension GL_GOOGLE_include_directive : require
// dst[i] = src[i]: the bandwidth probe of `vkinfer bench runtime` (bytes read + written).
#include "vki_abi.h"

layout(local_size_x = VKI_COPY_U32_LOCAL_SIZE, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

layout(std430, set = 0, binding = VKI_COPY_U32_BINDING_SRC) readonly buffer Src { uvec4 src[]; };
layout(std430, set = 0, binding = VKI_COPY_U32_BINDING_DST) writeonly buffer Dst { uvec4 dst[]; };

VKI_PUSH_BLOCK(VKI_PC_COPY_U32)

void main()
{
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x
           + gl_LocalInvocationID.x;
    if (i < pc.n)
        dst[i] = src[i];
}
