#version 450
#extension GL_GOOGLE_include_directive : require
// d[k, n] = table[k, ids[n]] as f32, the table in any weight type (quant.glsl) — an embedding
// lookup. One invocation per quad of an output row; ids outside [0, V) give zeros, so a bad id
// never reads outside the table.
#include "vki_abi.h"
#include "types.glsl"

layout(local_size_x = 64, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
layout(std430, binding = 0) readonly restrict buffer Table { uint w_words[]; };
layout(std430, binding = 1) readonly restrict buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly restrict buffer D { float d[]; };
VKI_PUSH_BLOCK(VKI_PC_GET_ROWS)

#include "quant.glsl"

void main()
{
    uint i = VKI_GLOBAL_INDEX();
    uint quads = (pc.K + 3u) / 4u;
    if (i >= quads * pc.N) return;
    uint n = i / quads, k = 4u * (i % quads);
    int id = ids[pc.i_off + n * pc.i_nb0];
    bool valid = id >= 0 && uint(id) < pc.v_total;
    bool mine = valid && uint(id) >= pc.v_first && uint(id) - pc.v_first < pc.V;
    if (!mine && (valid || pc.v_first != 0u)) return; // another slice's row, or its zeros
    vec4 v = vec4(0.0);
    if (mine) {
        uint row = pc.t_off + (uint(id) - pc.v_first) * pc.t_nb1;
#if WQ_QUANT
        v = w_quad(row, k); // K is a whole number of blocks
#else
        if (k + 4u <= pc.K) {
            v = w_quad(row, k);
        } else {
            for (uint j = 0u; k + j < pc.K; j++) v[j] = w_elem(row, k + j);
        }
#endif
    }
    for (uint j = 0u; j < 4u && k + j < pc.K; j++) d[pc.d_off + n * pc.K + k + j] = v[j];
}
