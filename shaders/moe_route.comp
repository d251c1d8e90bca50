#version 450
#extension GL_GOOGLE_include_directive : require
// matmul_id's batch, grouped by expert (ABI: abi_moe.h): one workgroup counts the (slot, token)
// pairs of each expert of the slice (shared atomics), lays the experts' runs of pairs out one
// after another and cuts each into tiles of up to tile_n pairs, then scatters the pairs into
// their runs. The order of pairs within a run is whatever the atomics make it: each pair is a
// column of the product of its own, computed the same way wherever it sits in a tile. Pairs
// whose id is outside [0, e_total) get their zero columns here (the first slice only).
#include "vki_abi.h"

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, binding = 0) readonly restrict buffer Ids { int ids[]; };
layout(std430, binding = 1) restrict buffer R { uint r[]; };
layout(std430, binding = 2) writeonly restrict buffer Y { float y[]; };
VKI_PUSH_BLOCK(VKI_PC_MOE_ROUTE)

shared uint count[VKI_MOE_ROUTE_MAX_EXPERTS];
shared uint cursor[VKI_MOE_ROUTE_MAX_EXPERTS]; // next free place of each expert's run

// The pair's expert within the slice, or e_count when it is another slice's or a bad id.
uint slice_expert(int id)
{
    return id >= int(pc.e_first) && uint(id) - pc.e_first < pc.e_count ? uint(id) - pc.e_first : pc.e_count;
}

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    for (uint e = tid; e < pc.e_count; e += nt) count[e] = 0u;
    barrier();
    for (uint b = tid; b < pc.pairs; b += nt) {
        uint e = slice_expert(ids[pc.i_off + b]);
        if (e < pc.e_count) atomicAdd(count[e], 1u);
    }
    barrier();
    // A few hundred experts at most: one invocation lays them out.
    if (tid == 0u) {
        uint start = 0u, tiles = 0u;
        for (uint e = 0u; e < pc.e_count; e++) {
            uint c = count[e];
            cursor[e] = start;
            for (uint f = 0u; f < c; f += pc.tile_n) {
                r[1u + 3u * tiles] = e;
                r[2u + 3u * tiles] = start + f;
                r[3u + 3u * tiles] = min(pc.tile_n, c - f);
                tiles++;
            }
            start += c;
        }
        r[0] = tiles;
    }
    barrier();
    for (uint b = tid; b < pc.pairs; b += nt) {
        int id = ids[pc.i_off + b];
        uint e = slice_expert(id);
        if (e < pc.e_count) {
            r[pc.list_off + atomicAdd(cursor[e], 1u)] = b;
        } else if ((id < 0 || uint(id) >= pc.e_total) && pc.e_first == 0u) {
            for (uint m = 0u; m < pc.M; m++) y[pc.y_off + m + pc.M * b] = 0.0;
        }
    }
}
