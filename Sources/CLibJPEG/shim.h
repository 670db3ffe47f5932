#ifndef LAYERWISE_CLIBJPEG_SHIM_H
#define LAYERWISE_CLIBJPEG_SHIM_H
/* jpeglib.h needs size_t and FILE declared first. */
#include <stddef.h>
#include <stdio.h>
#include <jpeglib.h>
#endif
