/** Tables as memory images hardware can walk: {@link dev.ptlab.core.image.TableImage}. */
package dev.ptlab.core.image;
