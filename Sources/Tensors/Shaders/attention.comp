// Flash attention for heads up to 128 channels wide (attention.glsl).
#version 450
#extension GL_GOOGLE_include_directive : require
#define MAX_DIM 128
#define TILE 16
#include "attention.glsl"
