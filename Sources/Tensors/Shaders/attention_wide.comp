// Flash attention for heads up to 512 channels wide (the VAE's single head, SD 1.x's 160-wide heads).
#version 450
#extension GL_GOOGLE_include_directive : require
#define MAX_DIM 512
#define TILE 4
#include "attention.glsl"
