#version 450
#extension GL_GOOGLE_include_directive : require
// data[i] += value: the smallest useful kernel. The runtime tests and `vkinfer bench runtime`
// use it for round trips, replay and the cost of one dispatch.
#include "vki_abi.h"

layout(local_size_x = VKI_ADD_U32_LOCAL_SIZE, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;

layout(std430, set = 0, binding = VKI_ADD_U32_BINDING_DATA) buffer Data { uint data[]; };

VKI_PUSH_BLOCK(VKI_PC_ADD_U32)

void main()
{
    // 2-D grid so that n above 65535 workgroups still fits maxComputeWorkGroupCount[0].
    uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x
           + gl_LocalInvocationID.x;
    if (i < pc.n)
        data[i] += pc.value;
}
