// Storage types of a variant, from its defines (see variants.txt):
//   FP16=1  the tensor storage type T is float16_t (else float)
#ifndef VKI_TYPES_GLSL
#define VKI_TYPES_GLSL

#if FP16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define T float16_t
#else
#define T float
#endif

// Flat invocation index on the 2-D grid made by vki_lower_grid. A macro, not a function: a
// function body would see gl_WorkGroupSize before the shader's local-size declaration.
#define VKI_GLOBAL_INDEX() \
    ((gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x)

#endif
