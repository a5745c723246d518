/* msgio.c - placeholder */
