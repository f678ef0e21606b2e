"""Typed models of everything that travels: records, descriptors, NFVO<->VNFM and VNFM<->EMS messages."""
