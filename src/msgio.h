/* msgio.h - placeholder */
#ifndef SN_MSGIO_H
#define SN_MSGIO_H
#endif
